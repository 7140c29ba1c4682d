// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title WeightsLib
/// @notice Weights of net exposure against targets, in bps. Net values are signed (an asset can be
///         borrowed beyond what is held), NAV must be positive.
library WeightsLib {
    int256 internal constant BPS = 10_000;

    /// @notice |weight - target| in bps, where weight = netE18 / navE18, rounded down.
    /// @param netE18 The asset's signed net value, E18 USD.
    /// @param navE18 NAV, E18 USD (positive).
    /// @param targetBps The asset's target weight, bps.
    function deviationBps(int256 netE18, int256 navE18, uint16 targetBps) internal pure returns (uint256) {
        return _abs(netE18 * BPS - int256(uint256(targetBps)) * navE18) / uint256(navE18);
    }

    /// @notice Sum over assets of |weight - target| * navE18, unscaled: divide by navE18 for bps.
    ///         Summing before dividing keeps the sum exact, so "strictly closer" is not lost to rounding.
    /// @param netE18 Signed net value per asset, E18 USD.
    /// @param navE18 NAV, E18 USD (positive).
    /// @param targetsBps Target weight per asset, bps, in the same order.
    /// @return sum Sum of |netE18 * 10,000 - target * navE18|.
    function distanceScaled(int256[] memory netE18, int256 navE18, uint16[] memory targetsBps)
        internal
        pure
        returns (uint256 sum)
    {
        for (uint256 i; i < netE18.length; ++i) {
            sum += _abs(netE18[i] * BPS - int256(uint256(targetsBps[i])) * navE18);
        }
    }

    /// @notice Net weight in bps clamped to [0, 65535] for display.
    /// @param netE18 The asset's signed net value, E18 USD.
    /// @param navE18 NAV, E18 USD (the weight is 0 when it is not positive).
    function weightBpsClamped(int256 netE18, int256 navE18) internal pure returns (uint16) {
        if (navE18 <= 0 || netE18 <= 0) return 0;
        int256 w = (netE18 * BPS) / navE18;
        return w > int256(uint256(type(uint16).max)) ? type(uint16).max : uint16(uint256(w));
    }

    function _abs(int256 x) private pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }
}
