// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IRebalancingVault} from "../interfaces/IRebalancingVault.sol";

/// @title OracleLib
/// @notice Chainlink-style feed guards (freshness per heartbeat, positive answer, own bounds) and the
///         scaling between a token's raw units, the feed's decimals and E18 USD.
library OracleLib {
    /// @notice Revert with the specific error when an answer is not positive, from the future,
    ///         older than the heartbeat, or outside [minAnswer, maxAnswer].
    /// @param feed The feed, for the error.
    /// @param answer The feed's answer.
    /// @param updatedAt When it was updated, unix seconds.
    /// @param heartbeat Longest accepted age of the answer, seconds.
    /// @param minAnswer Lowest accepted answer.
    /// @param maxAnswer Highest accepted answer.
    function check(
        address feed,
        int256 answer,
        uint256 updatedAt,
        uint256 heartbeat,
        int256 minAnswer,
        int256 maxAnswer
    ) internal view {
        if (answer <= 0) revert IRebalancingVault.BadAnswer(feed, answer);
        if (updatedAt > block.timestamp) revert IRebalancingVault.FeedFromFuture(feed, updatedAt, block.timestamp);
        if (block.timestamp - updatedAt > heartbeat) revert IRebalancingVault.StaleFeed(feed, updatedAt, heartbeat);
        if (answer < minAnswer || answer > maxAnswer) {
            revert IRebalancingVault.AnswerOutOfBounds(feed, answer, minAnswer, maxAnswer);
        }
    }

    /// @notice The same test as `check`, as a boolean.
    /// @param answer The feed's answer.
    /// @param updatedAt When it was updated, unix seconds.
    /// @param heartbeat Longest accepted age of the answer, seconds.
    /// @param minAnswer Lowest accepted answer.
    /// @param maxAnswer Highest accepted answer.
    function isGood(int256 answer, uint256 updatedAt, uint256 heartbeat, int256 minAnswer, int256 maxAnswer)
        internal
        view
        returns (bool)
    {
        return answer > 0 && updatedAt <= block.timestamp && block.timestamp - updatedAt <= heartbeat
            && answer >= minAnswer && answer <= maxAnswer;
    }

    /// @notice A positive answer with `feedDecimals` (<= 18) as an E18 price.
    /// @param answer A checked, positive answer.
    /// @param feedDecimals The feed's decimals (<= 18).
    function toE18(int256 answer, uint8 feedDecimals) internal pure returns (uint256) {
        // feedDecimals <= 18 (checked by setBasket): the power is at most 1e18, so EXP needs no check
        uint256 scale;
        unchecked {
            scale = 10 ** (18 - feedDecimals);
        }
        return uint256(answer) * scale;
    }

    /// @notice Value in E18 USD of `amountRaw`, rounded down.
    /// @param amountRaw Token amount in its own decimals.
    /// @param priceE18 Token price, E18 USD.
    /// @param tokenDecimals The token's decimals.
    function valueE18(uint256 amountRaw, uint256 priceE18, uint8 tokenDecimals) internal pure returns (uint256) {
        return Math.mulDiv(amountRaw, priceE18, unit(tokenDecimals));
    }

    /// @notice Raw amount worth `value` E18 USD, rounded down.
    /// @param value Value, E18 USD.
    /// @param priceE18 Token price, E18 USD.
    /// @param tokenDecimals The token's decimals.
    function amountRaw(uint256 value, uint256 priceE18, uint8 tokenDecimals) internal pure returns (uint256) {
        return Math.mulDiv(value, unit(tokenDecimals), priceE18);
    }

    /// @notice 10 ** decimals for a token's decimals (<= 18, checked by setBasket), without the
    ///         checked-power loop Solidity emits for a variable exponent.
    /// @param decimals The token's decimals (<= 18).
    /// @return u 10 ** decimals.
    function unit(uint8 decimals) internal pure returns (uint256 u) {
        unchecked {
            u = 10 ** uint256(decimals);
        }
    }
}
