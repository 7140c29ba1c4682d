// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAavePool
/// @notice The subset of Aave v3's IPool the vault uses, with Aave's exact signatures, so the
///         vault speaks to the real pool on a mainnet fork and to MockLendingPool locally.
interface IAavePool {
    /// @notice Supply `amount` of `asset` as collateral on behalf of `onBehalfOf`.
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external;

    /// @notice Withdraw `amount` of `asset` collateral to `to` (type(uint256).max for all).
    /// @return The amount withdrawn.
    function withdraw(address asset, uint256 amount, address to) external returns (uint256);

    /// @notice Borrow `amount` of `asset` (interestRateMode 2 = variable).
    function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode, address onBehalfOf)
        external;

    /// @notice Repay `amount` of `asset` debt (type(uint256).max for all).
    /// @return The amount repaid.
    function repay(address asset, uint256 amount, uint256 interestRateMode, address onBehalfOf)
        external
        returns (uint256);

    /// @notice Account totals in the base currency (USD, 8 decimals) and the health factor (1e18).
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
