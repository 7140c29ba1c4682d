"""The local "mainnet-like" market: anvil management, artifacts and the deploy/market helpers.

Used by the tests, the ape scripts and `keeper demo`. Speaks web3.py only (no ape), so the same
code serves every caller.
"""
