// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";

/// @title FeedHarness
/// @notice A Chainlink-style feed for tests that can say what a real feed must never say: an
///         updatedAt in the future, or nothing at all (latestRoundData reverts).
contract FeedHarness is IAggregatorV3 {
    /// @inheritdoc IAggregatorV3
    uint8 public immutable override decimals;
    int256 public answer;
    uint256 public updatedAt;
    bool public broken;

    /// @param decimals_ Answer decimals (any, so setBasket's check can be tested).
    /// @param answer_ First answer, stamped now.
    constructor(uint8 decimals_, int256 answer_) {
        decimals = decimals_;
        (answer, updatedAt) = (answer_, block.timestamp);
    }

    /// @notice Set the answer and its timestamp (the future is allowed here).
    function set(int256 answer_, uint256 updatedAt_) external {
        (answer, updatedAt) = (answer_, updatedAt_);
    }

    /// @notice Make latestRoundData revert (true) or answer again (false).
    function setBroken(bool broken_) external {
        broken = broken_;
    }

    /// @inheritdoc IAggregatorV3
    function description() external pure override returns (string memory) {
        return "harness";
    }

    /// @inheritdoc IAggregatorV3
    function version() external pure override returns (uint256) {
        return 1;
    }

    /// @inheritdoc IAggregatorV3
    function getRoundData(uint80 roundId) external view override returns (uint80, int256, uint256, uint256, uint80) {
        return (roundId, answer, updatedAt, updatedAt, roundId);
    }

    /// @inheritdoc IAggregatorV3
    function latestRoundData() external view override returns (uint80, int256, uint256, uint256, uint80) {
        require(!broken, "feed down");
        return (1, answer, updatedAt, updatedAt, 1);
    }
}
