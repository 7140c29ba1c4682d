// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISwapRouter} from "../interfaces/ISwapRouter.sol";

/// @title ReentrantRouter
/// @notice A whitelisted router that tries to re-enter the vault during a swap (must revert).
contract ReentrantRouter is ISwapRouter {
    /// @notice Call to replay on the vault while it is mid-swap.
    bytes public payload;

    /// @notice Set the re-entry call.
    /// @param payload_ Calldata sent back to the caller.
    function setPayload(bytes calldata payload_) external {
        payload = payload_;
    }

    /// @inheritdoc ISwapRouter
    function exactInputSingle(ExactInputSingleParams calldata) external payable returns (uint256) {
        (bool ok, bytes memory ret) = msg.sender.call(payload);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        return 0;
    }

    /// @inheritdoc ISwapRouter
    function exactInput(ExactInputParams calldata) external payable returns (uint256) {
        return 0;
    }
}
