// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IUniswapV3FactoryPools
/// @notice The two Uniswap v3 reads the TWAP guard needs (same ABI as Uniswap v3 core's
///         IUniswapV3Factory.getPool and IUniswapV3PoolDerivedState.observe).
interface IUniswapV3FactoryPools {
    /// @notice The pool of a token pair and fee tier, or address(0).
    /// @param tokenA One token of the pair.
    /// @param tokenB The other token.
    /// @param fee The fee tier, in hundredths of a bip.
    /// @return pool The pool address.
    function getPool(address tokenA, address tokenB, uint24 fee) external view returns (address pool);
}

/// @title IUniswapV3PoolObserve
/// @notice The pool's cumulative tick at past times (reverts "OLD" past its oldest observation).
interface IUniswapV3PoolObserve {
    /// @notice Cumulative values `secondsAgos[i]` seconds before now.
    /// @param secondsAgos How far back to read each value.
    /// @return tickCumulatives Tick x seconds, cumulative.
    /// @return secondsPerLiquidityCumulativeX128s Seconds per in-range liquidity, cumulative.
    function observe(uint32[] calldata secondsAgos)
        external
        view
        returns (int56[] memory tickCumulatives, uint160[] memory secondsPerLiquidityCumulativeX128s);
}
