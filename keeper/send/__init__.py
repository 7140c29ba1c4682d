"""Transaction sending: fees (pure), nonces, keys, leases, tracking and the Sender
(`keeper.send.sender`). The package imports nothing itself, so the chain layer can use its
ground-floor helpers (redaction in `keys`) without loading the Sender."""
