"""Chain access: web3 construction and ABI encode/decode. No decisions here."""
