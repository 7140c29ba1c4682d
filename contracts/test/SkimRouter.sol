// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ISwapRouter} from "../interfaces/ISwapRouter.sol";

/// @title SkimRouter
/// @notice A whitelisted-but-malicious router for tests: it takes the full input and pays out of its
///         own inventory exactly `amountOutMinimum - shortBy` (ignoring its own minimum), so it skims
///         everything the vault's oracle floor allows (shortBy = 0) or one unit more (shortBy = 1).
contract SkimRouter is ISwapRouter {
    using SafeERC20 for IERC20;

    /// @notice Units paid below the caller's floor.
    uint256 public shortBy;

    /// @notice Set how far below the floor to pay.
    /// @param shortBy_ Units below amountOutMinimum.
    function setShortBy(uint256 shortBy_) external {
        shortBy = shortBy_;
    }

    /// @inheritdoc ISwapRouter
    function exactInputSingle(ExactInputSingleParams calldata p) external payable returns (uint256) {
        return _settle(p.tokenIn, p.tokenOut, p.recipient, p.amountIn, p.amountOutMinimum);
    }

    /// @inheritdoc ISwapRouter
    function exactInput(ExactInputParams calldata p) external payable returns (uint256) {
        address tokenIn = address(bytes20(p.path[0:20]));
        address tokenOut = address(bytes20(p.path[p.path.length - 20:]));
        return _settle(tokenIn, tokenOut, p.recipient, p.amountIn, p.amountOutMinimum);
    }

    function _settle(address tokenIn, address tokenOut, address to, uint256 amountIn, uint256 minOut)
        internal
        returns (uint256 out)
    {
        IERC20(tokenIn).safeTransferFrom(msg.sender, address(this), amountIn);
        out = minOut - shortBy;
        IERC20(tokenOut).safeTransfer(to, out);
    }
}
