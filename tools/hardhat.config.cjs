// Hardhat Network as the project's second local node (keeper.localnet.hardhat, and the e2e
// tests in tests/e2e/test_hardhat.py). Nothing is compiled here: the contracts are built by ape
// and deployed over JSON-RPC, as on anvil. Start it by hand with
//   npx hardhat --config tools/hardhat.config.cjs node --hostname 127.0.0.1 --port 8545
// (without --hostname it listens on every interface).
module.exports = {
  paths: {
    root: "..",
    sources: ".tools/hardhat/contracts",
    cache: ".tools/hardhat/cache",
    artifacts: ".tools/hardhat/artifacts",
  },
  networks: {
    hardhat: {
      chainId: 31337,
      initialBaseFeePerGas: 1000000000, // 1 gwei, as the test session's anvil
    },
  },
};
