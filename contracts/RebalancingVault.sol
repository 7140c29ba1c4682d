// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IAavePool} from "./interfaces/IAavePool.sol";
import {ISwapRouter} from "./interfaces/ISwapRouter.sol";
import {VaultBase} from "./libraries/VaultBase.sol";
import {VaultAdmin} from "./libraries/VaultAdmin.sol";
import {OracleLib} from "./libraries/OracleLib.sol";
import {SlippageLib} from "./libraries/SlippageLib.sol";
import {WeightsLib} from "./libraries/WeightsLib.sol";

/// @title RebalancingVault
/// @notice An ERC-4626 vault (deposit asset USDC) holding a basket priced by Chainlink-style feeds,
///         with an optional Aave-v3-style collateral position. The keeper picks the moment; every
///         price, limit and floor is checked here, so a wrong, compromised or front-run keeper can
///         lose at most the configured slippage per trade and the loss cap per period.
contract RebalancingVault is VaultBase {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    // ─────────────────────────── construction ───────────────────────────

    /// @notice Deploys the vault and its VaultAdmin module with default limits; trading stays off
    ///         until the admin sets maxTradeE18.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (put it behind a timelock).
    /// @param usdc The deposit asset; it must be in every basket.
    /// @param pool Aave-v3-style pool, or address(0) to disable the collateral position.
    /// @param name_ Share token name.
    /// @param symbol_ Share token symbol.
    constructor(address admin, IERC20 usdc, IAavePool pool, string memory name_, string memory symbol_)
        VaultBase(usdc, pool, address(new VaultAdmin(usdc, pool)), name_, symbol_)
    {
        if (admin == address(0) || address(usdc) == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        // defaults inside the setters' bounds; trading stays off until the admin sets maxTradeE18
        _vs().limits = Limits(0, 0, 1 hours, 100, 100, 1 days, type(uint256).max);
        _vs().collateral = CollateralParams(address(usdc), 0, 0, 0, 9_000, 1.1e18);
        emit LimitsSet(_vs().limits);
        emit CollateralParamsSet(_vs().collateral);
    }

    // ─────────────────────────── admin (run by VaultAdmin) ───────────────────────────

    /// @notice Replace the basket. Targets must sum to 10,000 bps, with no duplicates and the deposit
    ///         asset included; an asset may only leave the basket with no balance and no position.
    /// @param configs The new basket.
    function setBasket(AssetConfig[] calldata configs) external {
        configs;
        _delegateToAdmin();
    }

    /// @notice Allow or disallow a swap router (admin).
    /// @param router Router address.
    /// @param allowed Whether the keeper may use it.
    function setRouter(address router, bool allowed) external {
        (router, allowed);
        _delegateToAdmin();
    }

    /// @notice Set the trading limits (admin): slippage <= 500 bps, loss cap <= 1,000 bps, cooldown
    ///         <= 7 days, loss period in [1 h, 30 days], ripcord cap <= trade cap.
    /// @param limits_ The new limits.
    function setLimits(Limits calldata limits_) external {
        limits_;
        _delegateToAdmin();
    }

    /// @notice Set the collateral targets (admin): min <= target <= max < ripcord <= 9,500 bps, HF
    ///         floor in [1.01, 5].
    /// @param params The new parameters.
    function setCollateralParams(CollateralParams calldata params) external {
        params;
        _delegateToAdmin();
    }

    /// @notice Set the oracle-vs-TWAP guard of rebalance legs (admin): window 0 turns it off; on, the
    ///         factory must be set, the window in [5 min, 1 day] and the limit in [10, 2,000] bps.
    /// @param guard The new guard.
    function setTwapGuard(TwapGuard calldata guard) external {
        guard;
        _delegateToAdmin();
    }

    /// @notice Stop deposits, rebalances and collateral actions; withdrawals keep working.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Resume after a pause (admin only, so a compromised guardian cannot undo a pause race).
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    // ─────────────────────────── keeper ───────────────────────────

    /// @notice Swap through whitelisted routers toward the target weights. Reverts unless a weight is
    ///         outside its inner band, every feed is good, the plan is under the notional cap, each
    ///         leg clears the oracle floor, the period loss stays under the cap and the weights end
    ///         strictly closer to target.
    /// @param swaps The legs, executed in order.
    /// @param deadline Last valid block timestamp.
    /// @param epoch_ Must equal `epoch`, so two keepers cannot both execute one plan.
    function rebalance(SwapLeg[] calldata swaps, uint256 deadline, uint256 epoch_)
        external
        nonReentrant
        whenNotPaused
        onlyRole(KEEPER_ROLE)
    {
        _checkTicket(deadline, epoch_);
        _checkCooldown(_vs().lastRebalanceTs);
        if (swaps.length == 0) revert EmptyPlan();
        Asset[] memory a = _vs().assets;
        uint256[] memory p = _prices(a);
        (int256[] memory net, int256 navBefore) = _netValues(a, p);
        uint256 distBefore = _checkNeeded(a, net, navBefore);
        _vs().lastRebalanceTs = block.timestamp;
        uint256 ep = ++_vs().epoch;
        if (_vs().twap.window != 0) _checkTwap();
        _executeLegs(swaps, a, p, _vs().limits.maxTradeE18, address(0), deadline, ep);
        int256 navAfter;
        (net, navAfter) = _netValues(a, p);
        _checkLossCap(navBefore, navAfter);
        uint256 distAfter = _checkCloser(a, net, navAfter, distBefore, navBefore);
        _checkHealth(0);
        emit Rebalanced(
            ep,
            swaps.length,
            uint256(navBefore),
            uint256(navAfter),
            distBefore / uint256(navBefore),
            distAfter,
            _vs().periodLossE18
        );
    }

    /// @notice Supply, withdraw, borrow or repay on the lending pool. Every feed must be good, the
    ///         cooldown and notional cap apply; afterwards the LTV must be <= maxLtvBps and the health
    ///         factor >= minHealthFactor, except that a Supply or Repay may instead strictly lower
    ///         the LTV (deleveraging from outside the band is always allowed).
    /// @param action What to do.
    /// @param asset A basket asset (for Borrow: the debt asset).
    /// @param amount Raw amount (Withdraw and Repay are clamped to the position).
    /// @param deadline Last valid block timestamp.
    /// @param epoch_ Must equal `epoch`.
    function adjustCollateral(
        CollateralAction action,
        address asset,
        uint256 amount,
        uint256 deadline,
        uint256 epoch_
    ) external nonReentrant whenNotPaused onlyRole(KEEPER_ROLE) {
        _checkTicket(deadline, epoch_);
        _checkCooldown(_vs().lastCollateralTs);
        if (address(lendingPool) == address(0)) revert LendingDisabled();
        if (amount == 0) revert ZeroAmount();
        uint256 notional = _notionalChecked(asset, amount);
        if (notional > _vs().limits.maxTradeE18) revert TradeTooLarge(notional, _vs().limits.maxTradeE18);
        _vs().lastCollateralTs = block.timestamp;
        uint256 ep = ++_vs().epoch;
        (uint256 done, uint256 ltv, uint256 hf) = _collateralStep(action, asset, amount);
        emit CollateralAdjusted(ep, action, asset, done, ltv, hf);
    }

    /// @notice Emergency deleverage, open only while the LTV is at or above ripcordLtvBps. No cooldown,
    ///         a tighter notional cap. Each leg must end in the debt asset; a leg's input missing from
    ///         the wallet is withdrawn from collateral first. Then `repayAmount` of the debt asset is
    ///         repaid (clamped). The LTV must fall and the period loss cap still applies.
    /// @param swaps Legs into the debt asset (may be empty to repay from the wallet).
    /// @param repayAmount Debt asset to repay, raw.
    /// @param deadline Last valid block timestamp.
    /// @param epoch_ Must equal `epoch`.
    function ripcord(SwapLeg[] calldata swaps, uint256 repayAmount, uint256 deadline, uint256 epoch_)
        external
        nonReentrant
        whenNotPaused
        onlyRole(KEEPER_ROLE)
    {
        _checkTicket(deadline, epoch_);
        if (address(lendingPool) == address(0)) revert LendingDisabled();
        (uint256 ltvBefore,,) = _ltvNow();
        if (ltvBefore < _vs().collateral.ripcordLtvBps) revert RipcordNotArmed(ltvBefore, _vs().collateral.ripcordLtvBps);
        Asset[] memory a = _vs().assets;
        uint256[] memory p = _prices(a);
        (, int256 navBefore) = _netValues(a, p);
        uint256 ep = ++_vs().epoch;
        address debtAsset = _vs().collateral.debtAsset;
        _executeLegs(swaps, a, p, _vs().limits.ripcordMaxTradeE18, debtAsset, deadline, ep);
        uint256 repaid = repayAmount == 0 ? 0 : _repay(debtAsset, repayAmount);
        (, int256 navAfter) = _netValues(a, p);
        _checkLossCap(navBefore, navAfter);
        (uint256 ltvAfter,,) = _ltvNow();
        if (ltvAfter >= ltvBefore) revert LtvNotReduced(ltvBefore, ltvAfter);
        emit RipcordPulled(ep, ltvBefore, ltvAfter, repaid);
    }

    // ─────────────────────────── ERC-4626 ───────────────────────────

    /// @notice NAV in the deposit asset's units, from fresh in-bounds feeds only (reverts otherwise),
    ///         so deposits and withdrawals are never priced from a bad feed.
    function totalAssets() public view override returns (uint256) {
        if (_vs().assets.length == 0) return IERC20(asset()).balanceOf(address(this));
        Asset[] memory a = _vs().assets;
        uint256[] memory p = _prices(a);
        (, int256 nav) = _netValues(a, p);
        if (nav <= 0) return 0;
        uint256 i = _vs().slotOf[asset()] - 1;
        return OracleLib.amountRaw(uint256(nav), p[i], a[i].decimals);
    }

    /// @notice Zero while paused; otherwise the headroom under depositCapRaw (0 if NAV is unpriceable).
    function maxDeposit(address) public view override returns (uint256) {
        if (paused()) return 0;
        uint256 cap = _vs().limits.depositCapRaw;
        if (cap == type(uint256).max) return cap;
        try this.totalAssets() returns (uint256 ta) {
            return ta >= cap ? 0 : cap - ta;
        } catch {
            return 0;
        }
    }

    /// @notice Shares mintable under maxDeposit.
    /// @param receiver Passed on to maxDeposit.
    function maxMint(address receiver) public view override returns (uint256) {
        uint256 m = maxDeposit(receiver);
        return m == type(uint256).max ? m : _convertToShares(m, Math.Rounding.Floor);
    }

    /// @notice The owner's assets, capped by the deposit asset held idle in the vault.
    /// @param owner Share holder.
    function maxWithdraw(address owner) public view override returns (uint256) {
        return Math.min(super.maxWithdraw(owner), IERC20(asset()).balanceOf(address(this)));
    }

    /// @notice The owner's shares, capped by what the idle deposit asset can pay.
    /// @param owner Share holder.
    function maxRedeem(address owner) public view override returns (uint256) {
        uint256 idleShares = _convertToShares(IERC20(asset()).balanceOf(address(this)), Math.Rounding.Floor);
        return Math.min(super.maxRedeem(owner), idleShares);
    }

    /// @notice ERC-4626 deposit; blocked while paused.
    /// @param assets Deposit asset amount, raw.
    /// @param receiver Receives the shares.
    function deposit(uint256 assets, address receiver) public override nonReentrant whenNotPaused returns (uint256) {
        return super.deposit(assets, receiver);
    }

    /// @notice ERC-4626 mint; blocked while paused.
    /// @param shares Shares to mint.
    /// @param receiver Receives the shares.
    function mint(uint256 shares, address receiver) public override nonReentrant whenNotPaused returns (uint256) {
        return super.mint(shares, receiver);
    }

    /// @notice ERC-4626 withdraw; works while paused.
    /// @param assets Deposit asset amount to withdraw, raw.
    /// @param receiver Receives the assets.
    /// @param owner Whose shares are burned.
    function withdraw(uint256 assets, address receiver, address owner)
        public
        override
        nonReentrant
        returns (uint256)
    {
        return super.withdraw(assets, receiver, owner);
    }

    /// @notice ERC-4626 redeem; works while paused.
    /// @param shares Shares to burn.
    /// @param receiver Receives the assets.
    /// @param owner Whose shares are burned.
    function redeem(uint256 shares, address receiver, address owner) public override nonReentrant returns (uint256) {
        return super.redeem(shares, receiver, owner);
    }


    // ─────────────────────────── views ───────────────────────────

    /// @notice Everything the keeper needs in one call; never reverts on a stale or bad feed (that
    ///         asset then shows feedOk = false and zero value/weight). Batchable with Multicall3.
    function keeperView() external view returns (KeeperView memory) {
        (bool ok, bytes memory ret) = address(this).staticcall(abi.encodeWithSignature("buildKeeperView()"));
        // returns (or bubbles) the module's ABI-encoded result verbatim, without a decode/re-encode
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            if iszero(ok) { revert(add(ret, 32), mload(ret)) }
            return(add(ret, 32), mload(ret))
        }
    }

    /// @notice Entry of keeperView into the admin module (state-free; called by keeperView).
    function buildKeeperView() external {
        _delegateToAdmin();
    }

    /// @notice The basket as configured.
    /// @return out One AssetConfig per basket asset, in basket order.
    function assetConfigs() external view returns (AssetConfig[] memory out) {
        out = new AssetConfig[](_vs().assets.length);
        for (uint256 i; i < out.length; ++i) {
            Asset memory x = _vs().assets[i];
            out[i] = AssetConfig(
                x.token, x.feed, x.targetBps, x.innerBandBps, x.outerBandBps, x.heartbeat, x.minAnswer, x.maxAnswer
            );
        }
    }

    /// @notice The current limits.
    function limits() external view returns (Limits memory) {
        return _vs().limits;
    }

    /// @notice The current collateral parameters.
    function collateralParams() external view returns (CollateralParams memory) {
        return _vs().collateral;
    }

    /// @notice The current oracle-vs-TWAP guard (window 0: off).
    function twapGuard() external view returns (TwapGuard memory) {
        return _vs().twap;
    }

    /// @notice Raw amounts the vault supplied to and borrowed from the pool for `token`.
    /// @param token A token (zero amounts when it has no position).
    /// @return suppliedRaw Supplied to the pool, raw.
    /// @return borrowedRaw Borrowed from the pool, raw.
    function positionOf(address token) external view returns (uint256 suppliedRaw, uint256 borrowedRaw) {
        Position memory pos = _vs().positions[token];
        return (pos.supplied, pos.borrowed);
    }

    /// @notice NAV in E18 USD from checked feeds (reverts on a bad feed).
    /// @return nav Signed net asset value, E18 USD.
    function navE18() external view returns (int256 nav) {
        Asset[] memory a = _vs().assets;
        (, nav) = _netValues(a, _prices(a));
    }

    /// @notice Sum of |weight - target| in bps from checked feeds (reverts on a bad feed).
    function distanceBps() external view returns (uint256) {
        Asset[] memory a = _vs().assets;
        (int256[] memory net, int256 nav) = _netValues(a, _prices(a));
        if (nav <= 0) revert NavNotPositive(nav);
        return WeightsLib.distanceScaled(net, nav, _targets(a)) / uint256(nav);
    }

    /// @notice Current LTV (bps) and health factor (1e18) of the lending position.
    /// @return ltvBps Debt / collateral in bps, rounded up (0 with no pool or no tracked debt).
    /// @return healthFactor The pool's health factor, 1e18 = 1.0 (max uint256 with no pool or no tracked debt).
    function collateralRatio() external view returns (uint256 ltvBps, uint256 healthFactor) {
        (ltvBps, healthFactor,) = _ltvNow();
    }


    // ─────────────────────────── guards ───────────────────────────

    function _checkTicket(uint256 deadline, uint256 epoch_) internal view {
        if (block.timestamp > deadline) revert DeadlinePassed(deadline);
        if (epoch_ != _vs().epoch) revert BadEpoch(epoch_, _vs().epoch);
    }

    function _checkCooldown(uint256 lastTs) internal view {
        uint256 readyAt = lastTs + _vs().limits.cooldown;
        if (lastTs != 0 && block.timestamp < readyAt) revert CooldownActive(readyAt);
    }

    /// @dev Reverts unless some weight is outside its inner band; returns the scaled distance.
    function _checkNeeded(Asset[] memory a, int256[] memory net, int256 nav) internal pure returns (uint256) {
        if (nav <= 0) revert NavNotPositive(nav);
        uint256 worst;
        for (uint256 i; i < a.length; ++i) {
            uint256 dev = WeightsLib.deviationBps(net[i], nav, a[i].targetBps);
            if (dev > a[i].innerBandBps) return WeightsLib.distanceScaled(net, nav, _targets(a));
            if (dev > worst) worst = dev;
        }
        revert NothingToRebalance(worst);
    }

    /// @dev Strictly closer: distAfter/navAfter < distBefore/navBefore, compared exactly.
    function _checkCloser(
        Asset[] memory a,
        int256[] memory net,
        int256 navAfter,
        uint256 distBefore,
        int256 navBefore
    ) internal pure returns (uint256 afterBps) {
        if (navAfter <= 0) revert NavNotPositive(navAfter);
        uint256 distAfter = WeightsLib.distanceScaled(net, navAfter, _targets(a));
        afterBps = distAfter / uint256(navAfter);
        if (distAfter * uint256(navBefore) >= distBefore * uint256(navAfter)) {
            revert NotCloserToTarget(distBefore / uint256(navBefore), afterBps);
        }
    }

    /// @dev Adds the NAV drop of this action to the period's loss and reverts above the cap.
    function _checkLossCap(int256 navBefore, int256 navAfter) internal {
        Limits storage lim = _vs().limits;
        if (block.timestamp >= _vs().lossPeriodStartTs + lim.lossPeriod) {
            _vs().lossPeriodStartTs = block.timestamp;
            _vs().periodLossE18 = 0;
            emit LossPeriodStarted(block.timestamp);
        }
        uint256 loss = navAfter < navBefore ? uint256(navBefore - navAfter) : 0;
        uint256 total = _vs().periodLossE18 + loss;
        uint256 cap = navBefore > 0 ? (uint256(navBefore) * lim.lossCapBps) / BPS : 0;
        if (total > cap) revert LossCapExceeded(total, cap);
        _vs().periodLossE18 = total;
    }

    /// @dev With debt: LTV <= maxLtvBps and HF >= minHealthFactor, unless the LTV ended strictly
    ///      below `passBelowLtvBps` (the LTV before a risk-reducing action; 0 = always strict).
    function _checkHealth(uint256 passBelowLtvBps) internal view returns (uint256 ltv, uint256 hf) {
        bool hasDebt;
        (ltv, hf, hasDebt) = _ltvNow();
        if (!hasDebt || ltv < passBelowLtvBps) return (ltv, hf);
        if (ltv > _vs().collateral.maxLtvBps) revert LtvTooHigh(ltv, _vs().collateral.maxLtvBps);
        if (hf < _vs().collateral.minHealthFactor) revert HealthTooLow(hf, _vs().collateral.minHealthFactor);
    }

    function _checkLeg(SwapLeg calldata leg, address requiredOut) internal view returns (uint256 i, uint256 o) {
        if (!_vs().isRouter[leg.router]) revert RouterNotAllowed(leg.router);
        if (leg.amountIn == 0) revert ZeroAmount();
        if (leg.tokenIn == leg.tokenOut) revert SameToken(leg.tokenIn);
        i = _indexOf(leg.tokenIn);
        o = _indexOf(leg.tokenOut);
        if (requiredOut != address(0) && leg.tokenOut != requiredOut) revert NotDebtAsset(leg.tokenOut, requiredOut);
        if (leg.path.length != 0) _checkPath(leg.path, leg.tokenIn, leg.tokenOut);
    }

    /// @dev A Uniswap v3 path: token (20) + n * (fee (3) + token (20)); every token in the basket.
    function _checkPath(bytes calldata path, address tokenIn, address tokenOut) internal view {
        uint256 n = path.length;
        if (n < 43 || (n - 20) % 23 != 0) revert BadPath(n);
        address first = address(bytes20(path[0:20]));
        address last = address(bytes20(path[n - 20:n]));
        if (first != tokenIn || last != tokenOut) revert PathMismatch(first, last);
        for (uint256 off = 23; off < n - 20; off += 23) {
            _indexOf(address(bytes20(path[off:off + 20])));
        }
    }

    // ─────────────────────────── swaps ───────────────────────────

    /// @dev Runs the legs in order; the cumulative notional is capped and each leg floored by the oracle.
    ///      With `debtAsset` set (ripcord), legs must end in it and missing input comes from collateral.
    function _executeLegs(
        SwapLeg[] calldata swaps,
        Asset[] memory a,
        uint256[] memory p,
        uint256 capE18,
        address debtAsset,
        uint256 deadline,
        uint256 ep
    ) internal {
        uint256 total;
        for (uint256 k; k < swaps.length; ++k) {
            SwapLeg calldata leg = swaps[k];
            (uint256 i, uint256 o) = _checkLeg(leg, debtAsset);
            uint256 notional = OracleLib.valueE18(leg.amountIn, p[i], a[i].decimals);
            total += notional;
            if (total > capE18) revert TradeTooLarge(total, capE18);
            _executeLeg(leg, notional, p[o], a[o].decimals, debtAsset != address(0), deadline, ep);
        }
    }

    /// @dev One leg: oracle floor, (ripcord: withdraw missing input), swap, event.
    function _executeLeg(
        SwapLeg calldata leg,
        uint256 notional,
        uint256 priceOutE18,
        uint8 decimalsOut,
        bool mayWithdraw,
        uint256 deadline,
        uint256 ep
    ) internal {
        (, uint256 minOut) = SlippageLib.minOut(notional, priceOutE18, decimalsOut, _vs().limits.maxSlippageBps);
        _ensureHeld(leg.tokenIn, leg.amountIn, mayWithdraw);
        uint256 out = _swap(leg, minOut, deadline);
        emit Swapped(ep, leg.router, leg.tokenIn, leg.tokenOut, leg.amountIn, out, minOut);
    }

    /// @dev Exact approval, router call with our floor, approval reset, floor re-checked on the balance.
    function _swap(SwapLeg calldata leg, uint256 minOut, uint256 deadline) internal returns (uint256 out) {
        IERC20 tokenIn = IERC20(leg.tokenIn);
        uint256 before = IERC20(leg.tokenOut).balanceOf(address(this));
        tokenIn.forceApprove(leg.router, leg.amountIn);
        if (leg.path.length == 0) {
            ISwapRouter(leg.router).exactInputSingle(
                ISwapRouter.ExactInputSingleParams(
                    leg.tokenIn, leg.tokenOut, leg.fee, address(this), deadline, leg.amountIn, minOut, 0
                )
            );
        } else {
            ISwapRouter(leg.router).exactInput(
                ISwapRouter.ExactInputParams(leg.path, address(this), deadline, leg.amountIn, minOut)
            );
        }
        if (tokenIn.allowance(address(this), leg.router) != 0) tokenIn.forceApprove(leg.router, 0);
        out = IERC20(leg.tokenOut).balanceOf(address(this)) - before;
        // The output is measured as a balance difference on purpose: the router's return value is
        // not trusted. `before` cannot go stale: every entry point that reaches here (rebalance,
        // ripcord) is nonReentrant, which Slither's reentrancy-balance does not model; a router
        // that re-enters is refused (tests/vault: ReentrantRouter), and one that pushes extra
        // tokens in only raises `out` above what the vault would otherwise count.
        // slither-disable-next-line reentrancy-balance
        if (out < minOut) revert SlippageExceeded(out, minOut);
    }

    /// @dev Makes sure `amount` of `token` is held; the ripcord may withdraw the shortfall from
    ///      collateral. The final check reads the balance again after the pool call.
    function _ensureHeld(address token, uint256 amount, bool mayWithdraw) internal {
        uint256 held = IERC20(token).balanceOf(address(this));
        if (held >= amount) return;
        if (!mayWithdraw || _vs().positions[token].supplied < amount - held) {
            revert InsufficientBalance(token, held, amount);
        }
        _withdrawCollateral(token, amount - held);
        uint256 heldAfter = IERC20(token).balanceOf(address(this));
        if (heldAfter < amount) revert InsufficientBalance(token, heldAfter, amount);
    }

    /// @dev The oracle-vs-TWAP check of every leg before any swap, run in the admin module (EIP-170
    ///      split); its revert bubbles. The ripcord skips it: in a crash the TWAP lags the oracle and
    ///      deleveraging must not wait (the oracle floor and the loss cap still bound it).
    ///      The module takes rebalance's own arguments, so the calldata is forwarded, not re-encoded.
    function _checkTwap() internal {
        Address.functionDelegateCall(_ADMIN_MODULE, bytes.concat(VaultAdmin.checkTwap.selector, msg.data[4:]));
    }

    // ─────────────────────────── collateral ───────────────────────────

    /// @dev Oracle value of `amount` of `asset`, with every feed checked: the pool values the whole
    ///      position from the same feeds.
    function _notionalChecked(address asset, uint256 amount) internal view returns (uint256) {
        uint256 i = _indexOf(asset);
        Asset[] memory a = _vs().assets;
        return OracleLib.valueE18(amount, _prices(a)[i], a[i].decimals);
    }

    /// @dev Applies the action, then the health guard. Supply and Repay may also pass by strictly
    ///      lowering an out-of-band LTV, so the keeper is never stuck between maxLtvBps and the
    ///      ripcord trigger; Borrow and Withdraw must end in band.
    function _collateralStep(CollateralAction action, address asset, uint256 amount)
        internal
        returns (uint256 done, uint256 ltv, uint256 hf)
    {
        uint256 ltvBefore;
        if (action == CollateralAction.Supply || action == CollateralAction.Repay) (ltvBefore,,) = _ltvNow();
        done = _applyCollateral(action, asset, amount);
        (ltv, hf) = _checkHealth(ltvBefore);
    }

    function _applyCollateral(CollateralAction action, address token, uint256 amount) internal returns (uint256) {
        if (action == CollateralAction.Supply) {
            uint256 held = IERC20(token).balanceOf(address(this));
            if (held < amount) revert InsufficientBalance(token, held, amount);
            IERC20(token).forceApprove(address(lendingPool), amount);
            lendingPool.supply(token, amount, address(this), 0);
            _vs().positions[token].supplied += amount.toUint128();
            return amount;
        }
        if (action == CollateralAction.Withdraw) return _withdrawCollateral(token, amount);
        if (action == CollateralAction.Borrow) {
            if (token != _vs().collateral.debtAsset) revert NotDebtAsset(token, _vs().collateral.debtAsset);
            lendingPool.borrow(token, amount, VARIABLE_RATE, 0, address(this));
            _vs().positions[token].borrowed += amount.toUint128();
            return amount;
        }
        return _repay(token, amount);
    }

    function _withdrawCollateral(address token, uint256 amount) internal returns (uint256 done) {
        Position storage pos = _vs().positions[token];
        done = lendingPool.withdraw(token, Math.min(amount, pos.supplied), address(this));
        pos.supplied -= uint128(Math.min(done, pos.supplied));
    }

    function _repay(address token, uint256 amount) internal returns (uint256 done) {
        Position storage pos = _vs().positions[token];
        uint256 amt = Math.min(amount, IERC20(token).balanceOf(address(this)));
        if (amt == 0) revert ZeroAmount();
        IERC20(token).forceApprove(address(lendingPool), amt);
        done = lendingPool.repay(token, amt, VARIABLE_RATE, address(this));
        pos.borrowed -= uint128(Math.min(done, pos.borrowed));
        IERC20(token).forceApprove(address(lendingPool), 0);
    }

    /// @dev (LTV bps, health factor, has debt) from the pool; LTV = debt / collateral, rounded up.
    function _ltvNow() internal view returns (uint256 ltv, uint256 hf, bool hasDebt) {
        // no tracked debt: swaps cannot change the pool position, so skip the (costly) pool read
        if (address(lendingPool) == address(0) || _vs().positions[_vs().collateral.debtAsset].borrowed == 0) {
            return (0, type(uint256).max, false);
        }
        (uint256 coll, uint256 debt,,,, uint256 h) = lendingPool.getUserAccountData(address(this));
        return (_ltvBps(coll, debt), h, debt != 0);
    }


    // ─────────────────────────── accounting ───────────────────────────

    /// @dev Net value per asset (held + supplied - borrowed) and their sum, E18 USD.
    function _netValues(Asset[] memory a, uint256[] memory p) internal view returns (int256[] memory net, int256 nav) {
        net = new int256[](a.length);
        for (uint256 i; i < a.length; ++i) {
            Position memory pos = _vs().positions[a[i].token];
            uint256 long = IERC20(a[i].token).balanceOf(address(this)) + pos.supplied;
            net[i] = int256(OracleLib.valueE18(long, p[i], a[i].decimals))
                - int256(OracleLib.valueE18(pos.borrowed, p[i], a[i].decimals));
            nav += net[i];
        }
    }

    function _targets(Asset[] memory a) internal pure returns (uint16[] memory t) {
        t = new uint16[](a.length);
        for (uint256 i; i < a.length; ++i) {
            t[i] = a[i].targetBps;
        }
    }



    // ─────────────────────────── module ───────────────────────────

    /// @dev Runs the same calldata in VaultAdmin on this storage and returns or bubbles its result.
    ///      The module checks the roles itself (same AccessControl storage).
    function _delegateToAdmin() internal {
        address module = _ADMIN_MODULE;
        // a plain delegatecall proxy to the admin module (the EIP-170 split), as in Balancer v3
        // solhint-disable-next-line no-inline-assembly
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), module, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }
}
