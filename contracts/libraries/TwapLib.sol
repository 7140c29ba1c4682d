// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title TwapLib
/// @notice Uniswap v3 tick arithmetic for the oracle-vs-TWAP guard, in Q96 fixed point. A tick t
///         means the raw price token1/token0 = 1.0001^t; the mean tick over a window is the TWAP.
library TwapLib {
    uint256 internal constant Q96 = 2 ** 96;
    uint256 internal constant BPS = 10_000;
    /// @dev Beyond it the Q128 reciprocal loses the precision a bps comparison needs.
    uint256 internal constant MAX_GUARD_TICK = 600_000;

    /// @notice The arithmetic mean tick between two cumulative readings `window` seconds apart,
    ///         rounded toward negative infinity (as Uniswap's OracleLibrary.consult does).
    /// @param olderCumulative The tick cumulative `window` seconds ago.
    /// @param newerCumulative The tick cumulative now.
    /// @param window The seconds between the two readings (> 0).
    /// @return tick The mean tick.
    function meanTick(int56 olderCumulative, int56 newerCumulative, uint32 window)
        internal
        pure
        returns (int256 tick)
    {
        int256 delta = int256(newerCumulative) - int256(olderCumulative);
        int256 w = int256(uint256(window));
        tick = delta / w;
        if (delta < 0 && delta % w != 0) --tick;
    }

    /// @notice 1.0001^tick in Q96 (raw token1 per raw token0), or 0 when |tick| > 600,000 (the
    ///         guard then fails closed: a 100% deviation). Binary powers of 1/1.0001 in Q128, each
    ///         product under 2^256 (the method of Uniswap's TickMath, with our own constants for the
    ///         price rather than its square root): about 1k gas. Accurate to 1e-10 in the range;
    ///         Q96 itself holds a small price to one unit.
    /// @param tick A pool tick.
    /// @return The raw price, Q96.
    function priceX96(int256 tick) internal pure returns (uint256) {
        uint256 n = tick < 0 ? uint256(-tick) : uint256(tick);
        if (n > MAX_GUARD_TICK) return 0;
        uint256 r = 1 << 128; // becomes 2^128 / 1.0001^n
        if (n & 0x1 != 0) r = (r * 0xfff97272373d413259a46990580e2139) >> 128;
        if (n & 0x2 != 0) r = (r * 0xfff2e50f5f656932ef12357cf3c7fdcb) >> 128;
        if (n & 0x4 != 0) r = (r * 0xffe5caca7e10e4e61c3624eaa0941ccf) >> 128;
        if (n & 0x8 != 0) r = (r * 0xffcb9843d60f6159c9db58835c926643) >> 128;
        if (n & 0x10 != 0) r = (r * 0xff973b41fa98c081472e6896dfb254bf) >> 128;
        if (n & 0x20 != 0) r = (r * 0xff2ea16466c96a3843ec78b326b52860) >> 128;
        if (n & 0x40 != 0) r = (r * 0xfe5dee046a99a2a811c461f1969c3052) >> 128;
        if (n & 0x80 != 0) r = (r * 0xfcbe86c7900a88aedcffc83b479aa3a3) >> 128;
        if (n & 0x100 != 0) r = (r * 0xf987a7253ac413176f2b074cf7815e53) >> 128;
        if (n & 0x200 != 0) r = (r * 0xf3392b0822b70005940c7a398e4b70f2) >> 128;
        if (n & 0x400 != 0) r = (r * 0xe7159475a2c29b7443b29c7fa6e889d8) >> 128;
        if (n & 0x800 != 0) r = (r * 0xd097f3bdfd2022b8845ad8f792aa5825) >> 128;
        if (n & 0x1000 != 0) r = (r * 0xa9f746462d870fdf8a65dc1f90e061e4) >> 128;
        if (n & 0x2000 != 0) r = (r * 0x70d869a156d2a1b890bb3df62baf32f6) >> 128;
        if (n & 0x4000 != 0) r = (r * 0x31be135f97d08fd981231505542fcfa5) >> 128;
        if (n & 0x8000 != 0) r = (r * 0x9aa508b5b7a84e1c677de54f3e99bc8) >> 128;
        if (n & 0x10000 != 0) r = (r * 0x5d6af8dedb81196699c329225ee604) >> 128;
        if (n & 0x20000 != 0) r = (r * 0x2216e584f5fa1ea926041bedfe97) >> 128;
        if (n & 0x40000 != 0) r = (r * 0x48a170391f7dc42444e8fa2) >> 128;
        if (n & 0x80000 != 0) r = (r * 0x149b34ee7ac262) >> 128;
        return tick < 0 ? r >> 32 : (uint256(1) << 224) / r;
    }

    /// @notice The oracles' raw price of token1 in token0, Q96: (p0 / p1) * 10^(d1 - d0).
    /// @param price0E18 Oracle price of token0, E18 USD per whole token.
    /// @param decimals0 Decimals of token0.
    /// @param price1E18 Oracle price of token1, E18 USD per whole token (> 0).
    /// @param decimals1 Decimals of token1.
    /// @return The raw price, Q96.
    function oraclePriceX96(uint256 price0E18, uint8 decimals0, uint256 price1E18, uint8 decimals1)
        internal
        pure
        returns (uint256)
    {
        return Math.mulDiv(price0E18 * 10 ** decimals1, Q96, price1E18 * 10 ** decimals0);
    }

    /// @notice |a - ref| / ref in bps, rounded up (so the guard never loosens by rounding).
    /// @param a The observed price.
    /// @param ref The reference price (> 0).
    /// @return The deviation, bps.
    function deviationBps(uint256 a, uint256 ref) internal pure returns (uint256) {
        uint256 diff = a > ref ? a - ref : ref - a;
        return Math.mulDiv(diff, BPS, ref, Math.Rounding.Ceil);
    }
}
