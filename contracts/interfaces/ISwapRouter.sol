// SPDX-License-Identifier: GPL-2.0-or-later
pragma solidity ^0.8.24;

/// @title ISwapRouter
/// @notice The two Uniswap v3 SwapRouter entry points the vault may call (same ABI as
///         the ISwapRouter of Uniswap v3 periphery).
interface ISwapRouter {
    struct ExactInputSingleParams {
        address tokenIn;
        address tokenOut;
        uint24 fee;
        address recipient;
        uint256 deadline;
        uint256 amountIn;
        uint256 amountOutMinimum;
        uint160 sqrtPriceLimitX96;
    }

    struct ExactInputParams {
        bytes path;
        address recipient;
        uint256 deadline;
        uint256 amountIn;
        uint256 amountOutMinimum;
    }

    /// @notice Swap `amountIn` of one token for as much as possible of another.
    /// @param params Tokens, fee tier, recipient, deadline, input amount and output floor.
    /// @return amountOut Output tokens received.
    function exactInputSingle(ExactInputSingleParams calldata params) external payable returns (uint256 amountOut);

    /// @notice Swap `amountIn` along `path` for as much as possible of the last token.
    /// @param params Encoded path, recipient, deadline, input amount and output floor.
    /// @return amountOut Output tokens received.
    function exactInput(ExactInputParams calldata params) external payable returns (uint256 amountOut);
}
