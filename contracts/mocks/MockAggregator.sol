// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";

/// @title MockAggregator
/// @notice A Chainlink-compatible price feed with a full round history, updatable by its owner
///         (the local market's deployer, tests and the demo's scripted market).
contract MockAggregator is IAggregatorV3, Ownable {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
    }

    uint8 public immutable override decimals;
    string public override description;
    uint256 public constant override version = 4;
    uint80 public latestRound;
    mapping(uint80 => Round) private _rounds;

    /// @notice Emitted on every new round, as Chainlink's AnswerUpdated.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    error NoData(uint80 roundId);
    error UpdatedAtInFuture(uint256 updatedAt, uint256 nowTs);

    /// @param decimals_ Answer decimals (8 for USD feeds).
    /// @param description_ e.g. "ETH / USD".
    /// @param initialAnswer First answer, stamped now.
    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) Ownable(msg.sender) {
        decimals = decimals_;
        description = description_;
        _push(initialAnswer, block.timestamp);
    }

    /// @notice Publish a new round stamped with the current block time.
    /// @param answer The new answer at `decimals`.
    function setAnswer(int256 answer) external onlyOwner {
        _push(answer, block.timestamp);
    }

    /// @notice Publish a new round with an explicit timestamp (to make a feed stale in tests).
    /// @param answer The new answer.
    /// @param updatedAt Its timestamp; must not be in the future.
    function setRoundData(int256 answer, uint256 updatedAt) external onlyOwner {
        if (updatedAt > block.timestamp) revert UpdatedAtInFuture(updatedAt, block.timestamp);
        _push(answer, updatedAt);
    }

    /// @inheritdoc IAggregatorV3
    function getRoundData(uint80 roundId) external view override returns (uint80, int256, uint256, uint256, uint80) {
        Round memory r = _rounds[roundId];
        if (r.updatedAt == 0) revert NoData(roundId);
        return (roundId, r.answer, r.startedAt, r.updatedAt, roundId);
    }

    /// @inheritdoc IAggregatorV3
    function latestRoundData() external view override returns (uint80, int256, uint256, uint256, uint80) {
        Round memory r = _rounds[latestRound];
        return (latestRound, r.answer, r.startedAt, r.updatedAt, latestRound);
    }

    /// @notice The latest answer (Chainlink's legacy getter).
    function latestAnswer() external view returns (int256) {
        return _rounds[latestRound].answer;
    }

    function _push(int256 answer, uint256 updatedAt) private {
        latestRound += 1;
        _rounds[latestRound] = Round(answer, updatedAt, updatedAt);
        emit AnswerUpdated(answer, latestRound, updatedAt);
    }
}
