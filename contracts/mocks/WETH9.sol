// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title WETH9
/// @notice Wrapped ether with WETH9's interface and events (deposit, withdraw, ERC-20), for the
///         local market. Written for ^0.8 with the same behaviour as the mainnet contract.
contract WETH9 {
    string public constant name = "Wrapped Ether";
    string public constant symbol = "WETH";
    uint8 public constant decimals = 18;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Approval(address indexed src, address indexed guy, uint256 wad);
    event Transfer(address indexed src, address indexed dst, uint256 wad);
    event Deposit(address indexed dst, uint256 wad);
    event Withdrawal(address indexed src, uint256 wad);

    error InsufficientBalance(uint256 balance, uint256 needed);
    error InsufficientAllowance(uint256 allowance, uint256 needed);
    error EthTransferFailed();

    receive() external payable {
        deposit();
    }

    /// @notice Wrap the ether sent.
    function deposit() public payable {
        balanceOf[msg.sender] += msg.value;
        emit Deposit(msg.sender, msg.value);
    }

    /// @notice Unwrap `wad` to ether.
    /// @param wad Amount in wei.
    function withdraw(uint256 wad) external {
        uint256 bal = balanceOf[msg.sender];
        if (bal < wad) revert InsufficientBalance(bal, wad);
        balanceOf[msg.sender] = bal - wad;
        (bool ok,) = msg.sender.call{value: wad}("");
        if (!ok) revert EthTransferFailed();
        emit Withdrawal(msg.sender, wad);
    }

    /// @notice Total wrapped ether.
    function totalSupply() external view returns (uint256) {
        return address(this).balance;
    }

    /// @notice Approve `guy` to spend `wad`.
    function approve(address guy, uint256 wad) external returns (bool) {
        allowance[msg.sender][guy] = wad;
        emit Approval(msg.sender, guy, wad);
        return true;
    }

    /// @notice Transfer `wad` to `dst`.
    function transfer(address dst, uint256 wad) external returns (bool) {
        return transferFrom(msg.sender, dst, wad);
    }

    /// @notice Transfer `wad` from `src` to `dst` (infinite approvals are not decreased).
    function transferFrom(address src, address dst, uint256 wad) public returns (bool) {
        uint256 bal = balanceOf[src];
        if (bal < wad) revert InsufficientBalance(bal, wad);
        if (src != msg.sender) {
            uint256 allowed = allowance[src][msg.sender];
            if (allowed != type(uint256).max) {
                if (allowed < wad) revert InsufficientAllowance(allowed, wad);
                allowance[src][msg.sender] = allowed - wad;
            }
        }
        balanceOf[src] = bal - wad;
        balanceOf[dst] += wad;
        emit Transfer(src, dst, wad);
        return true;
    }
}
