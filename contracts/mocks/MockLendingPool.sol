// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IAavePool} from "../interfaces/IAavePool.sol";
import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";

/// @title MockLendingPool
/// @notice The local stand-in for Aave v3: the IPool subset the vault uses, with oracle-based
///         collateral value, per-reserve LTV and liquidation threshold, a health factor in 1e18
///         and variable-rate interest that accrues per second. Base currency: USD, 8 decimals.
contract MockLendingPool is IAavePool, Ownable {
    using SafeERC20 for IERC20;

    uint256 private constant RAY = 1e27;
    uint256 private constant BPS = 10_000;
    uint256 private constant SECONDS_PER_YEAR = 365 days;
    uint256 private constant BASE_DECIMALS = 8;

    struct Reserve {
        address feed;
        uint16 ltvBps;
        uint16 liquidationThresholdBps;
        uint16 borrowRateBps; // annual, simple
        uint8 decimals;
        uint256 borrowIndexRay;
        uint256 lastUpdateTs;
        bool listed;
    }

    mapping(address => Reserve) public reserves;
    address[] public reserveList;
    mapping(address => mapping(address => uint256)) public collateralOf;
    mapping(address => mapping(address => uint256)) private _scaledDebt;

    event ReserveListed(address indexed asset, address feed, uint16 ltvBps, uint16 liquidationThresholdBps, uint16 rateBps);
    event Supplied(address indexed asset, address indexed onBehalfOf, uint256 amount);
    event Withdrawn(address indexed asset, address indexed user, address to, uint256 amount);
    event Borrowed(address indexed asset, address indexed onBehalfOf, uint256 amount);
    event Repaid(address indexed asset, address indexed onBehalfOf, uint256 amount);

    error ReserveNotListed(address asset);
    error InvalidReserveParams(uint16 ltvBps, uint16 liquidationThresholdBps);
    error ZeroAmount();
    error InsufficientCollateral(uint256 balance, uint256 requested);
    error BorrowCapExceeded(uint256 debtBase, uint256 maxDebtBase);
    error HealthFactorBelowOne(uint256 healthFactor);
    error BadPrice(address feed, int256 answer);
    error NoDebt(address asset, address user);

    constructor() Ownable(msg.sender) {}

    /// @notice List (or update) a reserve.
    /// @param asset The token.
    /// @param feed Its USD feed (8 decimals).
    /// @param ltvBps Max borrow power per unit of collateral.
    /// @param liquidationThresholdBps Health factor threshold; must be >= ltvBps and < 10_000.
    /// @param borrowRateBps Annual variable borrow rate.
    function listReserve(address asset, address feed, uint16 ltvBps, uint16 liquidationThresholdBps, uint16 borrowRateBps)
        external
        onlyOwner
    {
        if (ltvBps > liquidationThresholdBps || liquidationThresholdBps >= BPS) {
            revert InvalidReserveParams(ltvBps, liquidationThresholdBps);
        }
        Reserve storage r = reserves[asset];
        if (!r.listed) {
            reserveList.push(asset);
            r.borrowIndexRay = RAY;
            r.lastUpdateTs = block.timestamp;
            r.listed = true;
            r.decimals = IERC20Metadata(asset).decimals();
        }
        _accrue(r);
        (r.feed, r.ltvBps, r.liquidationThresholdBps, r.borrowRateBps) = (feed, ltvBps, liquidationThresholdBps, borrowRateBps);
        emit ReserveListed(asset, feed, ltvBps, liquidationThresholdBps, borrowRateBps);
    }

    /// @inheritdoc IAavePool
    function supply(address asset, uint256 amount, address onBehalfOf, uint16) external override {
        _listed(asset);
        if (amount == 0) revert ZeroAmount();
        IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
        collateralOf[onBehalfOf][asset] += amount;
        emit Supplied(asset, onBehalfOf, amount);
    }

    /// @inheritdoc IAavePool
    function withdraw(address asset, uint256 amount, address to) external override returns (uint256) {
        _listed(asset);
        uint256 bal = collateralOf[msg.sender][asset];
        if (amount == type(uint256).max) amount = bal;
        if (amount == 0) revert ZeroAmount();
        if (amount > bal) revert InsufficientCollateral(bal, amount);
        collateralOf[msg.sender][asset] = bal - amount;
        _requireHealthy(msg.sender);
        IERC20(asset).safeTransfer(to, amount);
        emit Withdrawn(asset, msg.sender, to, amount);
        return amount;
    }

    /// @inheritdoc IAavePool
    function borrow(address asset, uint256 amount, uint256, uint16, address onBehalfOf) external override {
        Reserve storage r = _listed(asset);
        if (amount == 0) revert ZeroAmount();
        _accrue(r);
        _scaledDebt[onBehalfOf][asset] += Math.mulDiv(amount, RAY, r.borrowIndexRay, Math.Rounding.Ceil);
        (uint256 coll, uint256 debt,,, uint256 ltv,) = _accountData(onBehalfOf);
        uint256 maxDebt = coll * ltv / BPS;
        if (debt > maxDebt) revert BorrowCapExceeded(debt, maxDebt);
        IERC20(asset).safeTransfer(msg.sender, amount);
        emit Borrowed(asset, onBehalfOf, amount);
    }

    /// @inheritdoc IAavePool
    function repay(address asset, uint256 amount, uint256, address onBehalfOf) external override returns (uint256) {
        Reserve storage r = _listed(asset);
        _accrue(r);
        uint256 owed = debtOf(onBehalfOf, asset);
        if (owed == 0) revert NoDebt(asset, onBehalfOf);
        if (amount > owed) amount = owed;
        if (amount == 0) revert ZeroAmount();
        IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
        _scaledDebt[onBehalfOf][asset] = amount == owed
            ? 0
            : _scaledDebt[onBehalfOf][asset] - Math.mulDiv(amount, RAY, r.borrowIndexRay, Math.Rounding.Floor);
        emit Repaid(asset, onBehalfOf, amount);
        return amount;
    }

    /// @inheritdoc IAavePool
    function getUserAccountData(address user)
        external
        view
        override
        returns (uint256, uint256, uint256, uint256, uint256, uint256)
    {
        return _accountData(user);
    }

    /// @notice Current debt of `user` in `asset`, interest included.
    function debtOf(address user, address asset) public view returns (uint256) {
        return Math.mulDiv(_scaledDebt[user][asset], _currentIndex(reserves[asset]), RAY, Math.Rounding.Ceil);
    }

    /// @notice Number of listed reserves.
    function reserveCount() external view returns (uint256) {
        return reserveList.length;
    }

    function _accountData(address user)
        internal
        view
        returns (uint256 coll, uint256 debt, uint256 available, uint256 liqT, uint256 ltv, uint256 hf)
    {
        uint256 ltvWeighted;
        uint256 liqWeighted;
        for (uint256 i = 0; i < reserveList.length; i++) {
            address asset = reserveList[i];
            Reserve storage r = reserves[asset];
            uint256 c = collateralOf[user][asset];
            if (c > 0) {
                uint256 v = _toBase(r, c);
                coll += v;
                ltvWeighted += v * r.ltvBps;
                liqWeighted += v * r.liquidationThresholdBps;
            }
            uint256 d = debtOf(user, asset);
            if (d > 0) debt += _toBase(r, d);
        }
        if (coll > 0) (ltv, liqT) = (ltvWeighted / coll, liqWeighted / coll);
        uint256 maxDebt = coll * ltv / BPS;
        available = maxDebt > debt ? maxDebt - debt : 0;
        hf = debt == 0 ? type(uint256).max : Math.mulDiv(coll * liqT, 1e18, debt * BPS);
    }

    function _toBase(Reserve storage r, uint256 amount) internal view returns (uint256) {
        (, int256 answer,,,) = IAggregatorV3(r.feed).latestRoundData();
        if (answer <= 0) revert BadPrice(r.feed, answer);
        uint8 feedDecimals = IAggregatorV3(r.feed).decimals();
        return Math.mulDiv(amount, uint256(answer) * 10 ** BASE_DECIMALS, 10 ** (r.decimals + feedDecimals));
    }

    function _requireHealthy(address user) internal view {
        (,,,,, uint256 hf) = _accountData(user);
        if (hf < 1e18) revert HealthFactorBelowOne(hf);
    }

    function _currentIndex(Reserve storage r) internal view returns (uint256) {
        if (!r.listed) return RAY;
        uint256 dt = block.timestamp - r.lastUpdateTs;
        return r.borrowIndexRay + r.borrowIndexRay * r.borrowRateBps * dt / (BPS * SECONDS_PER_YEAR);
    }

    function _accrue(Reserve storage r) internal {
        r.borrowIndexRay = _currentIndex(r);
        r.lastUpdateTs = block.timestamp;
    }

    function _listed(address asset) internal view returns (Reserve storage r) {
        r = reserves[asset];
        if (!r.listed) revert ReserveNotListed(asset);
    }
}
