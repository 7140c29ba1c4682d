// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {OracleLib} from "./OracleLib.sol";

/// @title SlippageLib
/// @notice The swap floor, computed on chain from the oracle: the keeper never supplies a minimum.
library SlippageLib {
    uint256 internal constant BPS = 10_000;

    /// @notice minOut = oracleOut * (1 - maxSlippageBps), rounded up so the floor never loosens.
    /// @param notionalInE18 Oracle value of the input, E18 USD.
    /// @param priceOutE18 Oracle price of the output token, E18 USD.
    /// @param decimalsOut Output token decimals.
    /// @param maxSlippageBps Allowed shortfall against the oracle, bps.
    /// @return oracleOut What the oracle says the input is worth in output units (rounded down).
    /// @return minOut The floor passed to the router and re-checked against the balance change.
    function minOut(uint256 notionalInE18, uint256 priceOutE18, uint8 decimalsOut, uint16 maxSlippageBps)
        internal
        pure
        returns (uint256 oracleOut, uint256 minOut)
    {
        oracleOut = OracleLib.amountRaw(notionalInE18, priceOutE18, decimalsOut);
        minOut = Math.mulDiv(oracleOut, BPS - maxSlippageBps, BPS, Math.Rounding.Ceil);
    }
}
