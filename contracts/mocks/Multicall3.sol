// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Multicall3
/// @notice The read side of mds1's Multicall3 with the same ABI (aggregate, tryAggregate,
///         aggregate3 and the block getters). The local market places its runtime code at the
///         canonical address 0xcA11bde05977b3631167028862bE2a173976CA11, as on mainnet.
contract Multicall3 {
    struct Call {
        address target;
        bytes callData;
    }

    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    error CallFailed(uint256 index);

    /// @notice Run every call; revert if any fails.
    function aggregate(Call[] calldata calls) external returns (uint256 blockNumber, bytes[] memory returnData) {
        blockNumber = block.number;
        returnData = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool ok, bytes memory ret) = calls[i].target.call(calls[i].callData);
            if (!ok) revert CallFailed(i);
            returnData[i] = ret;
        }
    }

    /// @notice Run every call; revert on failure only if `requireSuccess`.
    function tryAggregate(bool requireSuccess, Call[] calldata calls) public returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool ok, bytes memory ret) = calls[i].target.call(calls[i].callData);
            if (requireSuccess && !ok) revert CallFailed(i);
            returnData[i] = Result(ok, ret);
        }
    }

    /// @notice Run every call, each with its own failure policy.
    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool ok, bytes memory ret) = calls[i].target.call(calls[i].callData);
            if (!calls[i].allowFailure && !ok) revert CallFailed(i);
            returnData[i] = Result(ok, ret);
        }
    }

    /// @notice The current block number.
    function getBlockNumber() external view returns (uint256) {
        return block.number;
    }

    /// @notice The hash of block `blockNumber` (zero beyond the last 256).
    function getBlockHash(uint256 blockNumber) external view returns (bytes32) {
        return blockhash(blockNumber);
    }

    /// @notice The hash of the previous block.
    function getLastBlockHash() external view returns (bytes32) {
        return blockhash(block.number - 1);
    }

    /// @notice The current block's timestamp.
    function getCurrentBlockTimestamp() external view returns (uint256) {
        return block.timestamp;
    }

    /// @notice The current block's base fee.
    function getBasefee() external view returns (uint256) {
        return block.basefee;
    }

    /// @notice The chain id.
    function getChainId() external view returns (uint256) {
        return block.chainid;
    }

    /// @notice The ether balance of `addr`.
    function getEthBalance(address addr) external view returns (uint256) {
        return addr.balance;
    }
}
