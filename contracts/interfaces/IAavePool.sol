// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAavePool
/// @notice The subset of Aave v3's IPool the vault uses, with Aave's exact signatures: the vault
///         speaks to Aave v3's own Pool, on a mainnet fork and on the local market alike.
interface IAavePool {
    /// @notice Supply `amount` of `asset` as collateral on behalf of `onBehalfOf`.
    /// @param asset The reserve's underlying token.
    /// @param amount Raw amount to supply.
    /// @param onBehalfOf Who gets the aTokens.
    /// @param referralCode Aave referral code (0 for none).
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external;

    /// @notice Withdraw `amount` of `asset` collateral to `to` (type(uint256).max for all).
    /// @param asset The reserve's underlying token.
    /// @param amount Raw amount to withdraw.
    /// @param to Receives the underlying.
    /// @return The amount withdrawn.
    function withdraw(address asset, uint256 amount, address to) external returns (uint256);

    /// @notice Borrow `amount` of `asset` (interestRateMode 2 = variable).
    /// @param asset The reserve's underlying token.
    /// @param amount Raw amount to borrow.
    /// @param interestRateMode 2 = variable.
    /// @param referralCode Aave referral code (0 for none).
    /// @param onBehalfOf Who takes on the debt (and receives the tokens when it is the caller).
    function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode, address onBehalfOf)
        external;

    /// @notice Repay `amount` of `asset` debt (type(uint256).max for all).
    /// @param asset The reserve's underlying token.
    /// @param amount Raw amount to repay.
    /// @param interestRateMode 2 = variable.
    /// @param onBehalfOf Whose debt is repaid.
    /// @return The amount repaid.
    function repay(address asset, uint256 amount, uint256 interestRateMode, address onBehalfOf)
        external
        returns (uint256);

    /// @notice A reserve's state and tokens: Aave v3's `getReserveData`, whose DataTypes.ReserveData (kept
    ///         from v3.1 onwards as ReserveDataLegacy) is 15 static words: configuration,
    ///         liquidityIndex, currentLiquidityRate, variableBorrowIndex, currentVariableBorrowRate,
    ///         currentStableBorrowRate, lastUpdateTimestamp, id, aTokenAddress (word 8),
    ///         stableDebtTokenAddress, variableDebtTokenAddress (word 10), interestRateStrategyAddress,
    ///         accruedToTreasury, unbacked, isolationModeTotalDebt. Declared as the words: the vault
    ///         reads two of them, and a field-by-field decode costs its admin module about 400 bytes.
    /// @param asset The reserve's underlying token.
    /// @return words The reserve's data (all zero when the pool does not list `asset`).
    function getReserveData(address asset) external view returns (uint256[15] memory words);

    /// @notice Account totals in the base currency (USD, 8 decimals) and the health factor (1e18).
    /// @param user The account.
    /// @return totalCollateralBase Collateral, base currency.
    /// @return totalDebtBase Debt, base currency.
    /// @return availableBorrowsBase What the account may still borrow, base currency.
    /// @return currentLiquidationThreshold Weighted liquidation threshold, bps.
    /// @return ltv Weighted maximum loan-to-value, bps.
    /// @return healthFactor 1e18 = 1.0; below it the account can be liquidated.
    function getUserAccountData(address user)
        external
        view
        returns (
            uint256 totalCollateralBase,
            uint256 totalDebtBase,
            uint256 availableBorrowsBase,
            uint256 currentLiquidationThreshold,
            uint256 ltv,
            uint256 healthFactor
        );
}
