// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockERC20
/// @notice A freely mintable ERC-20 with any number of decimals, for the local market.
contract MockERC20 is ERC20 {
    uint8 private immutable _DECIMALS;

    /// @param name_ Token name.
    /// @param symbol_ Token symbol.
    /// @param decimals_ Token decimals (6 for USDC, 8 for WBTC, 18 for LINK).
    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _DECIMALS = decimals_;
    }

    /// @inheritdoc ERC20
    function decimals() public view override returns (uint8) {
        return _DECIMALS;
    }

    /// @notice Mint `amount` to `to`. Open to anyone: this is a local test token.
    /// @param to Receiver.
    /// @param amount Amount in the token's own units.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
