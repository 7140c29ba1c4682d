"""The local "mainnet-like" market: artifacts (the project's and the npm packages'), the deploy
(tokens, feeds, Uniswap v3, Aave v3, Multicall3), the mainnet replica at canonical addresses,
market moves, the dev node's own methods (anvil or Hardhat), Hardhat as a process, and a
third-party liquidator.

Used by the tests, the ape scripts and `keeper demo`. Speaks web3.py only (no ape), so the same
code serves every caller.
"""
