// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAggregatorV3
/// @notice Chainlink's AggregatorV3Interface, written out here because @chainlink/contracts
///         cannot be installed offline. Same selectors as the real feeds.
interface IAggregatorV3 {
    /// @notice Decimals of `answer`.
    function decimals() external view returns (uint8);

    /// @notice Human-readable description, e.g. "ETH / USD".
    function description() external view returns (string memory);

    /// @notice Aggregator version.
    function version() external view returns (uint256);

    /// @notice Data of a past round.
    /// @param roundId The round to read.
    /// @return roundId_ The round read.
    /// @return answer The price, with `decimals()` decimals.
    /// @return startedAt When the round started, unix seconds.
    /// @return updatedAt When the answer was last updated, unix seconds.
    /// @return answeredInRound Deprecated; the round the answer was computed in.
    function getRoundData(uint80 roundId)
        external
        view
        returns (uint80 roundId_, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    /// @notice Data of the latest round.
    /// @return roundId The latest round.
    /// @return answer The price, with `decimals()` decimals.
    /// @return startedAt When the round started, unix seconds.
    /// @return updatedAt When the answer was last updated, unix seconds.
    /// @return answeredInRound Deprecated; the round the answer was computed in.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
