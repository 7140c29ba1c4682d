// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TwapLib} from "../libraries/TwapLib.sol";

/// @title TwapLibHarness
/// @notice Exposes TwapLib's internal functions to the tests (never deployed outside anvil).
contract TwapLibHarness {
    function meanTick(int56 olderCumulative, int56 newerCumulative, uint32 window) external pure returns (int256) {
        return TwapLib.meanTick(olderCumulative, newerCumulative, window);
    }

    function priceX96(int256 tick) external pure returns (uint256) {
        return TwapLib.priceX96(tick);
    }

    function oraclePriceX96(uint256 p0, uint8 d0, uint256 p1, uint8 d1) external pure returns (uint256) {
        return TwapLib.oraclePriceX96(p0, d0, p1, d1);
    }

    function deviationBps(uint256 a, uint256 ref) external pure returns (uint256) {
        return TwapLib.deviationBps(a, ref);
    }
}
