// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {TransientSlot} from "@openzeppelin/contracts/utils/TransientSlot.sol";

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
    using SafeCast for int256;
    using TransientSlot for TransientSlot.Bytes32Slot;

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
        _vs().config = Config(address(0), 0, 0, 100, 100, uint24(1 hours), uint24(1 days));
        _vs().depositCapRaw = type(uint256).max;
        _vs().collateral = CollateralParams(address(usdc), 0, 0, 0, 9_000, 1.1e18);
        emit LimitsSet(Limits(0, 0, 1 hours, 100, 100, 1 days, type(uint256).max));
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

    /// @dev Pausable's _pause on the packed flag (see paused()).
    function _pause() internal override whenNotPaused {
        _vs().config.flags |= FLAG_PAUSED;
        emit Paused(_msgSender());
    }

    /// @dev Pausable's _unpause on the packed flag (see paused()).
    function _unpause() internal override whenPaused {
        _vs().config.flags &= ~FLAG_PAUSED;
        emit Unpaused(_msgSender());
    }

    // ─────────────────────────── keeper ───────────────────────────

    /// @dev The basket, its checked prices and net values at one moment.
    struct Book {
        Asset[] a;
        uint256[] p;
        int256[] net;
        int256 nav;
        uint16[] targets;
        uint256[] held; // wallet balances, kept exact through the legs (see _swap)
        uint256[] lent; // aToken balances (see _lending); a swap does not move them
        uint256[] owed; // debt token balances
    }

    /// @dev What every leg of one call shares.
    struct Run {
        uint256 capE18; // notional cap of the whole call
        uint256 deadline;
        uint256 epoch;
        address debtAsset; // ripcord: every leg must end in it, and may withdraw its input
        uint16 maxSlippageBps;
    }

    /// @notice Swap through whitelisted routers toward the target weights. Reverts unless a weight is
    ///         outside its inner band, every feed is good, the plan is under the notional cap, each
    ///         leg clears the oracle floor, the rolling loss stays under the cap and the weights end
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
        Config memory cfg = _vs().config;
        KeeperState memory st = _vs().state;
        _checkTicket(st, deadline, epoch_);
        _checkCooldown(st.lastRebalanceTs, cfg.cooldown);
        if (swaps.length == 0) revert EmptyPlan();
        Book memory before = _book(cfg);
        uint256 distBefore = _checkNeeded(before);
        st.lastRebalanceTs = block.timestamp.toUint40();
        ++st.epoch;
        _vs().state = st;
        if (cfg.flags & FLAG_TWAP != 0) _checkTwap(before.a, before.p);
        _executeLegs(swaps, before, Run(_vs().caps.maxTradeE18, deadline, st.epoch, address(0), cfg.maxSlippageBps));
        _finishRebalance(st, cfg, before, distBefore, swaps.length);
    }

    /// @dev After the legs: NAV and weights once more, the loss cap, strictly closer, health, event.
    function _finishRebalance(
        KeeperState memory st,
        Config memory cfg,
        Book memory before,
        uint256 distBefore,
        uint256 legs
    ) internal {
        (int256[] memory net, int256 navAfter) = _netOf(before);
        uint256 lossUsed = _checkLossCap(st, cfg, before.nav, navAfter);
        uint256 distAfter = _checkCloser(before, net, navAfter, distBefore);
        if (cfg.flags & FLAG_DEBT != 0) _checkHealth(0);
        uint256 navBefore = uint256(before.nav); // positive: _checkNeeded passed
        emit Rebalanced(st.epoch, legs, navBefore, uint256(navAfter), distBefore / navBefore, distAfter, lossUsed);
    }

    /// @notice Supply, withdraw, borrow or repay on the lending pool. Every feed must be good, the
    ///         cooldown and notional cap apply; afterwards the LTV must be <= maxLtvBps and the health
    ///         factor >= minHealthFactor, except that a Supply or Repay may instead strictly lower
    ///         the LTV (deleveraging from outside the band is always allowed).
    /// @param action What to do.
    /// @param asset A basket asset (for Borrow: the debt asset).
    /// @param amount Raw amount (Withdraw is clamped to the aToken balance, Repay to the debt and the
    ///        wallet).
    /// @param deadline Last valid block timestamp.
    /// @param epoch_ Must equal `epoch`.
    function adjustCollateral(
        CollateralAction action,
        address asset,
        uint256 amount,
        uint256 deadline,
        uint256 epoch_
    ) external nonReentrant whenNotPaused onlyRole(KEEPER_ROLE) {
        Config memory cfg = _vs().config;
        KeeperState memory st = _vs().state;
        _checkTicket(st, deadline, epoch_);
        _checkCooldown(st.lastCollateralTs, cfg.cooldown);
        if (address(lendingPool) == address(0)) revert LendingDisabled();
        if (amount == 0) revert ZeroAmount();
        uint256 i = _checkNotional(cfg, asset, amount);
        st.lastCollateralTs = block.timestamp.toUint40();
        ++st.epoch;
        _vs().state = st;
        (uint256 done, uint256 ltv, uint256 hf) = _collateralStep(action, asset, amount, i);
        emit CollateralAdjusted(st.epoch, action, asset, done, ltv, hf);
    }

    /// @notice Emergency deleverage, open only while the LTV is at or above ripcordLtvBps. No cooldown,
    ///         a tighter notional cap. Each leg must end in the debt asset; a leg's input missing from
    ///         the wallet is withdrawn from collateral first. Then `repayAmount` of the debt asset is
    ///         repaid (clamped). The LTV must fall and the rolling loss cap still applies.
    /// @param swaps Legs into the debt asset (may be empty to repay from the wallet).
    /// @param repayAmount Debt asset to repay, raw (clamped to the debt and the wallet).
    /// @param deadline Last valid block timestamp.
    /// @param epoch_ Must equal `epoch`.
    function ripcord(SwapLeg[] calldata swaps, uint256 repayAmount, uint256 deadline, uint256 epoch_)
        external
        nonReentrant
        whenNotPaused
        onlyRole(KEEPER_ROLE)
    {
        KeeperState memory st = _vs().state;
        _checkTicket(st, deadline, epoch_);
        if (address(lendingPool) == address(0)) revert LendingDisabled();
        (uint256 ltvBefore,,) = _ltvNow();
        CollateralParams memory col = _vs().collateral;
        if (ltvBefore < col.ripcordLtvBps) revert RipcordNotArmed(ltvBefore, col.ripcordLtvBps);
        Config memory cfg = _vs().config;
        Book memory before = _book(cfg);
        ++st.epoch;
        _vs().state = st;
        _executeLegs(
            swaps, before, Run(_vs().caps.ripcordMaxTradeE18, deadline, st.epoch, col.debtAsset, cfg.maxSlippageBps)
        );
        uint256 repaid;
        if (repayAmount != 0) {
            uint256 d = _indexOf(before.a, col.debtAsset);
            repaid = _repay(col.debtAsset, repayAmount, before.owed[d]);
            before.held[d] = IERC20(col.debtAsset).balanceOf(address(this));
        }
        // the pool position after the withdrawals and the repay, read again; the config read before
        // names a superset of the positions now (a ripcord opens none)
        (before.lent, before.owed) = _lending(before.a, cfg);
        (, int256 navAfter) = _netOf(before);
        _checkLossCap(st, cfg, before.nav, navAfter);
        (uint256 ltvAfter,,) = _ltvNow();
        if (ltvAfter >= ltvBefore) revert LtvNotReduced(ltvBefore, ltvAfter);
        emit RipcordPulled(st.epoch, ltvBefore, ltvAfter, repaid);
    }

    // ─────────────────────────── ERC-4626 ───────────────────────────
    // Views never revert: with a feed stale, out of bounds or unreadable they price from the clamped
    // answers (totalAssets, convertTo*) and every max* is 0, since the actions would revert. Actions
    // and previews price from checked feeds only. Arithmetic saturates at 2^256 - 1 in the views and
    // reverts in the actions. docs/vault.md has the whole table.

    /// @notice NAV in the deposit asset's units. Exact while every feed is good; otherwise an estimate
    ///         from each bad feed's answer clamped into its bounds (no action is priced from it then).
    /// @return ta Total assets, raw units of the deposit asset.
    function totalAssets() public view override returns (uint256 ta) {
        (ta,) = _totalAssets();
    }

    /// @notice Zero while paused or while any feed is bad; otherwise the headroom under
    ///         depositCapRaw (type(uint256).max without a cap).
    function maxDeposit(address) public view override returns (uint256) {
        (uint256 ta, bool good) = _totalAssets();
        return good && !paused() ? _depositRoom(ta) : 0;
    }

    /// @notice Shares mintable under maxDeposit.
    function maxMint(address) public view override returns (uint256) {
        (uint256 ta, bool good) = _totalAssets();
        return good && !paused() ? _mintRoom(ta) : 0;
    }

    /// @notice The owner's assets, capped by the deposit asset held idle in the vault; 0 on a bad feed.
    /// @param owner Share holder.
    function maxWithdraw(address owner) public view override returns (uint256) {
        (uint256 ta, bool good) = _totalAssets();
        return good ? _withdrawRoom(owner, ta) : 0;
    }

    /// @notice The owner's shares, capped by what the idle deposit asset pays (all of them whenever it
    ///         covers previewRedeem(balanceOf(owner))); 0 on a bad feed.
    /// @param owner Share holder.
    function maxRedeem(address owner) public view override returns (uint256) {
        (uint256 ta, bool good) = _totalAssets();
        return good ? _redeemRoom(owner, ta) : 0;
    }

    /// @notice Exactly what deposit() mints now; reverts on a bad feed as deposit() does.
    /// @param assets Deposit asset amount, raw.
    function previewDeposit(uint256 assets) public view override returns (uint256) {
        return _toShares(assets, _strictAssets(), Math.Rounding.Floor);
    }

    /// @notice Exactly what mint() takes now; reverts on a bad feed as mint() does.
    /// @param shares Shares to mint.
    function previewMint(uint256 shares) public view override returns (uint256) {
        return _toAssets(shares, _strictAssets(), Math.Rounding.Ceil);
    }

    /// @notice Exactly what withdraw() burns now; reverts on a bad feed as withdraw() does.
    /// @param assets Deposit asset amount, raw.
    function previewWithdraw(uint256 assets) public view override returns (uint256) {
        return _toShares(assets, _strictAssets(), Math.Rounding.Ceil);
    }

    /// @notice Exactly what redeem() pays now; reverts on a bad feed as redeem() does.
    /// @param shares Shares to burn.
    function previewRedeem(uint256 shares) public view override returns (uint256) {
        return _toAssets(shares, _strictAssets(), Math.Rounding.Floor);
    }

    /// @notice ERC-4626 deposit; blocked while paused, priced from checked feeds.
    /// @param assets Deposit asset amount, raw.
    /// @param receiver Receives the shares.
    /// @return shares Shares minted.
    function deposit(uint256 assets, address receiver)
        public
        override
        nonReentrant
        whenNotPaused
        returns (uint256 shares)
    {
        uint256 ta = _strictAssets();
        uint256 room = _depositRoom(ta);
        if (assets > room) revert ERC4626ExceededMaxDeposit(receiver, assets, room);
        shares = _toShares(assets, ta, Math.Rounding.Floor);
        _deposit(_msgSender(), receiver, assets, shares);
    }

    /// @notice ERC-4626 mint; blocked while paused, priced from checked feeds.
    /// @param shares Shares to mint.
    /// @param receiver Receives the shares.
    /// @return assets Deposit asset taken, raw.
    function mint(uint256 shares, address receiver) public override nonReentrant whenNotPaused returns (uint256 assets) {
        uint256 ta = _strictAssets();
        uint256 room = _mintRoom(ta);
        if (shares > room) revert ERC4626ExceededMaxMint(receiver, shares, room);
        assets = _toAssets(shares, ta, Math.Rounding.Ceil);
        _deposit(_msgSender(), receiver, assets, shares);
    }

    /// @notice ERC-4626 withdraw; works while paused, priced from checked feeds.
    /// @param assets Deposit asset amount to withdraw, raw.
    /// @param receiver Receives the assets.
    /// @param owner Whose shares are burned.
    /// @return shares Shares burned.
    function withdraw(uint256 assets, address receiver, address owner)
        public
        override
        nonReentrant
        returns (uint256 shares)
    {
        uint256 ta = _strictAssets();
        uint256 room = _withdrawRoom(owner, ta);
        if (assets > room) revert ERC4626ExceededMaxWithdraw(owner, assets, room);
        shares = _toShares(assets, ta, Math.Rounding.Ceil);
        _withdraw(_msgSender(), receiver, owner, assets, shares);
    }

    /// @notice ERC-4626 redeem; works while paused, priced from checked feeds.
    /// @param shares Shares to burn.
    /// @param receiver Receives the assets.
    /// @param owner Whose shares are burned.
    /// @return assets Deposit asset paid, raw.
    function redeem(uint256 shares, address receiver, address owner)
        public
        override
        nonReentrant
        returns (uint256 assets)
    {
        uint256 ta = _strictAssets();
        uint256 room = _redeemRoom(owner, ta);
        if (shares > room) revert ERC4626ExceededMaxRedeem(owner, shares, room);
        assets = _toAssets(shares, ta, Math.Rounding.Floor);
        _withdraw(_msgSender(), receiver, owner, assets, shares);
    }

    /// @dev convertToShares and friends: from totalAssets(), never reverting.
    function _convertToShares(uint256 assets, Math.Rounding rounding) internal view override returns (uint256) {
        return _toShares(assets, totalAssets(), rounding);
    }

    /// @dev convertToAssets and friends: from totalAssets(), never reverting.
    function _convertToAssets(uint256 shares, Math.Rounding rounding) internal view override returns (uint256) {
        return _toAssets(shares, totalAssets(), rounding);
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
        Asset[] memory a = _basket(_vs().config.basket);
        out = new AssetConfig[](a.length);
        for (uint256 i; i < a.length; ++i) {
            Asset memory x = a[i];
            out[i] = AssetConfig(
                x.token, x.feed, x.targetBps, x.innerBandBps, x.outerBandBps, x.heartbeat, x.minAnswer, x.maxAnswer
            );
        }
    }

    /// @notice The current limits.
    function limits() external view returns (Limits memory) {
        Config memory c = _vs().config;
        TradeCaps memory t = _vs().caps;
        return Limits(
            t.maxTradeE18, t.ripcordMaxTradeE18, c.cooldown, c.maxSlippageBps, c.lossCapBps, c.lossPeriod, _vs().depositCapRaw
        );
    }

    /// @notice The current collateral parameters.
    function collateralParams() external view returns (CollateralParams memory) {
        return _vs().collateral;
    }

    /// @notice The current oracle-vs-TWAP guard (window 0: off).
    function twapGuard() external view returns (TwapGuard memory) {
        return _vs().twap;
    }

    /// @notice NAV in E18 USD from checked feeds (reverts on a bad feed): wallet + aToken balances -
    ///         debt token balances, at the oracle prices.
    /// @return nav Signed net asset value, E18 USD.
    function navE18() external view returns (int256 nav) {
        return _book(_vs().config).nav;
    }

    /// @notice Sum of |weight - target| in bps from checked feeds (reverts on a bad feed).
    function distanceBps() external view returns (uint256) {
        Book memory b = _book(_vs().config);
        if (b.nav <= 0) revert NavNotPositive(b.nav);
        return WeightsLib.distanceScaled(b.net, b.nav, b.targets) / uint256(b.nav);
    }

    /// @notice Current LTV (bps) and health factor (1e18) of the lending position.
    /// @return ltvBps Debt / collateral in bps, rounded up (0 with no pool or no debt).
    /// @return healthFactor The pool's health factor, 1e18 = 1.0 (max uint256 with no pool or no debt).
    function collateralRatio() external view returns (uint256 ltvBps, uint256 healthFactor) {
        (ltvBps, healthFactor,) = _ltvNow();
    }

    // ─────────────────────────── guards ───────────────────────────

    function _checkTicket(KeeperState memory st, uint256 deadline, uint256 epoch_) internal view {
        if (block.timestamp > deadline) revert DeadlinePassed(deadline);
        if (epoch_ != st.epoch) revert BadEpoch(epoch_, st.epoch);
    }

    function _checkCooldown(uint256 lastTs, uint256 cooldown) internal view {
        uint256 readyAt = lastTs + cooldown;
        if (lastTs != 0 && block.timestamp < readyAt) revert CooldownActive(readyAt);
    }

    /// @dev Reverts unless some weight is outside its inner band; returns the scaled distance.
    function _checkNeeded(Book memory b) internal pure returns (uint256) {
        if (b.nav <= 0) revert NavNotPositive(b.nav);
        uint256 worst;
        for (uint256 i; i < b.a.length; ++i) {
            uint256 dev = WeightsLib.deviationBps(b.net[i], b.nav, b.targets[i]);
            if (dev > b.a[i].innerBandBps) return WeightsLib.distanceScaled(b.net, b.nav, b.targets);
            if (dev > worst) worst = dev;
        }
        revert NothingToRebalance(worst);
    }

    /// @dev Strictly closer: distAfter/navAfter < distBefore/navBefore, compared exactly.
    function _checkCloser(Book memory before, int256[] memory net, int256 navAfter, uint256 distBefore)
        internal
        pure
        returns (uint256 afterBps)
    {
        if (navAfter <= 0) revert NavNotPositive(navAfter);
        uint256 distAfter = WeightsLib.distanceScaled(net, navAfter, before.targets);
        afterBps = distAfter / uint256(navAfter);
        if (distAfter * uint256(before.nav) >= distBefore * uint256(navAfter)) {
            revert NotCloserToTarget(distBefore / uint256(before.nav), afterBps);
        }
    }

    /// @dev Counts this action's NAV drop (a fraction of navBefore, rounded up) in the rolling window
    ///      and reverts above the cap; writes the keeper state. Returns the window's total.
    function _checkLossCap(KeeperState memory st, Config memory cfg, int256 navBefore, int256 navAfter)
        internal
        returns (uint256 used)
    {
        uint256 lossE8;
        if (navAfter < navBefore) {
            // with no positive NAV to divide by, any loss counts as all of it
            lossE8 = navBefore <= 0
                ? LOSS_UNIT
                : Math.mulDiv((navBefore - navAfter).toUint256(), LOSS_UNIT, uint256(navBefore), Math.Rounding.Ceil);
        }
        uint256 bucket;
        (used, bucket) = _lossWindow(st, cfg.lossPeriod);
        used += lossE8;
        uint256 cap = uint256(cfg.lossCapBps) * LOSS_UNITS_PER_BPS;
        if (used > cap) revert LossCapExceeded(used, cap);
        uint256 ring = st.lossRing;
        for (uint256 k = 1; k <= bucket - st.lossBucket && k < 5; ++k) {
            ring &= ~(uint256(0xFFFFFF) << (24 * ((st.lossBucket + k) & 3))); // a bucket the ring enters
        }
        // each bucket stays <= the cap <= 1e7 < 2^24, so the addition never carries into the next
        st.lossRing = (ring + (lossE8 << (24 * (bucket & 3)))).toUint96();
        st.lossBucket = bucket.toUint32();
        _vs().state = st;
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

    function _checkLeg(Asset[] memory a, SwapLeg calldata leg, address requiredOut)
        internal
        view
        returns (uint256 i, uint256 o)
    {
        if (!_vs().isRouter[leg.router]) revert RouterNotAllowed(leg.router);
        if (leg.amountIn == 0) revert ZeroAmount();
        if (leg.tokenIn == leg.tokenOut) revert SameToken(leg.tokenIn);
        i = _indexOf(a, leg.tokenIn);
        o = _indexOf(a, leg.tokenOut);
        if (requiredOut != address(0) && leg.tokenOut != requiredOut) revert NotDebtAsset(leg.tokenOut, requiredOut);
        if (leg.path.length != 0) _checkPath(a, leg.path, leg.tokenIn, leg.tokenOut);
    }

    /// @dev A Uniswap v3 path: token (20) + n * (fee (3) + token (20)); every token in the basket.
    function _checkPath(Asset[] memory a, bytes calldata path, address tokenIn, address tokenOut) internal pure {
        uint256 n = path.length;
        if (n < 43 || (n - 20) % 23 != 0) revert BadPath(n);
        address first = address(bytes20(path[0:20]));
        address last = address(bytes20(path[n - 20:n]));
        if (first != tokenIn || last != tokenOut) revert PathMismatch(first, last);
        for (uint256 off = 23; off < n - 20; off += 23) {
            _indexOf(a, address(bytes20(path[off:off + 20])));
        }
    }

    // ─────────────────────────── swaps ───────────────────────────

    /// @dev Runs the legs in order; the cumulative notional is capped and each leg floored by the oracle.
    ///      With `r.debtAsset` set (ripcord), legs must end in it and missing input comes from collateral.
    function _executeLegs(SwapLeg[] calldata swaps, Book memory b, Run memory r) internal {
        uint256 total;
        for (uint256 k; k < swaps.length; ++k) {
            SwapLeg calldata leg = swaps[k];
            (uint256 i, uint256 o) = _checkLeg(b.a, leg, r.debtAsset);
            uint256 notional = OracleLib.valueE18(leg.amountIn, b.p[i], b.a[i].decimals);
            total += notional;
            if (total > r.capE18) revert TradeTooLarge(total, r.capE18);
            (, uint256 minOut) = SlippageLib.minOut(notional, b.p[o], b.a[o].decimals, r.maxSlippageBps);
            if (b.held[i] < leg.amountIn) b.held[i] = _ensureHeld(b, leg.amountIn, r, i);
            uint256 out = _swap(leg, minOut, r.deadline, b.held, i, o);
            emit Swapped(r.epoch, leg.router, leg.tokenIn, leg.tokenOut, leg.amountIn, out, minOut);
        }
    }

    /// @dev Exact approval, router call with our floor, floor re-checked on the balance change. Both
    ///      balances are read after the call and kept in `held`, so they stay exact for the next leg
    ///      and for the NAV after the legs. The approval is cleared unless the input balance fell by
    ///      exactly amountIn (the router then spent all of it, the only way our tokens leave).
    function _swap(SwapLeg calldata leg, uint256 minOut, uint256 deadline, uint256[] memory held, uint256 i, uint256 o)
        internal
        returns (uint256 out)
    {
        IERC20 tokenIn = IERC20(leg.tokenIn);
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
        uint256 inAfter = tokenIn.balanceOf(address(this));
        if (inAfter + leg.amountIn != held[i]) tokenIn.forceApprove(leg.router, 0);
        uint256 outAfter = IERC20(leg.tokenOut).balanceOf(address(this));
        out = outAfter - held[o];
        (held[i], held[o]) = (inAfter, outAfter);
        // The output is measured as a balance difference on purpose: the router's return value is
        // not trusted. held[o] cannot go stale: every entry point that reaches here (rebalance,
        // ripcord) is nonReentrant, which Slither's reentrancy-balance does not model; a router
        // that re-enters is refused (tests/vault: ReentrantRouter), and one that pushes extra
        // tokens in only raises `out` above what the vault would otherwise count.
        // slither-disable-next-line reentrancy-balance
        if (out < minOut) revert SlippageExceeded(out, minOut);
    }

    /// @dev The wallet holds less than `amount` of basket asset `i`: the ripcord withdraws the shortfall
    ///      from its supply in the pool (the aToken balance read for this call), a rebalance reverts.
    ///      Returns the balance read after the pool call.
    function _ensureHeld(Book memory b, uint256 amount, Run memory r, uint256 i) internal returns (uint256 heldAfter) {
        address token = b.a[i].token;
        if (r.debtAsset == address(0) || b.lent[i] < amount - b.held[i]) {
            revert InsufficientBalance(token, b.held[i], amount);
        }
        b.lent[i] -= _withdrawCollateral(token, amount - b.held[i], i, b.lent[i]);
        heldAfter = IERC20(token).balanceOf(address(this));
        if (heldAfter < amount) revert InsufficientBalance(token, heldAfter, amount);
    }

    /// @dev The oracle-vs-TWAP check of every leg before any swap, run in the admin module (EIP-170
    ///      split); its revert bubbles. The prices read for this call reach the module through
    ///      transient storage, so no feed is read twice. The ripcord skips it: in a crash the TWAP
    ///      lags the oracle and deleveraging must not wait (the oracle floor and the loss cap still
    ///      bound it). The module takes rebalance's own arguments, so the calldata is forwarded.
    function _checkTwap(Asset[] memory a, uint256[] memory p) internal {
        for (uint256 i; i < a.length; ++i) {
            _twapPriceSlot(a[i].token).tstore(bytes32((p[i] << 8) | a[i].decimals));
        }
        Address.functionDelegateCall(_ADMIN_MODULE, bytes.concat(VaultAdmin.checkTwap.selector, msg.data[4:]));
    }

    // ─────────────────────────── collateral ───────────────────────────

    /// @dev Reverts unless every feed is good (the pool values the whole position from them) and the
    ///      oracle value of `amount` is under the trade cap; returns the asset's basket index.
    function _checkNotional(Config memory cfg, address asset, uint256 amount) internal view returns (uint256 i) {
        Asset[] memory a = _basket(cfg.basket);
        (uint256[] memory p,) = _prices(a, true);
        i = _indexOf(a, asset);
        uint256 notional = OracleLib.valueE18(amount, p[i], a[i].decimals);
        uint256 cap = _vs().caps.maxTradeE18;
        if (notional > cap) revert TradeTooLarge(notional, cap);
    }

    /// @dev Applies the action, then the health guard. Supply and Repay may also pass by strictly
    ///      lowering an out-of-band LTV, so the keeper is never stuck between maxLtvBps and the
    ///      ripcord trigger; Borrow and Withdraw must end in band.
    function _collateralStep(CollateralAction action, address asset, uint256 amount, uint256 i)
        internal
        returns (uint256 done, uint256 ltv, uint256 hf)
    {
        uint256 ltvBefore;
        if (action == CollateralAction.Supply || action == CollateralAction.Repay) (ltvBefore,,) = _ltvNow();
        done = _applyCollateral(action, asset, amount, i);
        (ltv, hf) = _checkHealth(ltvBefore);
    }

    /// @dev One pool call on basket asset `i`, which the pool must list. Withdraw and Repay read the
    ///      pool's own balances (aToken, debt token) first and never ask for more than them, whatever
    ///      interest or a liquidation did since.
    function _applyCollateral(CollateralAction action, address token, uint256 amount, uint256 i)
        internal
        returns (uint256)
    {
        (address aToken, address debtToken) = _poolTokens(_vs().config.basket, i);
        if (aToken == address(0)) revert ReserveNotListed(token);
        if (action == CollateralAction.Supply) {
            uint256 held = IERC20(token).balanceOf(address(this));
            if (held < amount) revert InsufficientBalance(token, held, amount);
            IERC20(token).forceApprove(address(lendingPool), amount);
            lendingPool.supply(token, amount, address(this), 0);
            _vs().config.supplyMask |= uint8(1 << i);
            return amount;
        }
        if (action == CollateralAction.Withdraw) {
            return _withdrawCollateral(token, amount, i, IERC20(aToken).balanceOf(address(this)));
        }
        if (token != _vs().collateral.debtAsset) revert NotDebtAsset(token, _vs().collateral.debtAsset);
        if (action == CollateralAction.Borrow) {
            lendingPool.borrow(token, amount, VARIABLE_RATE, 0, address(this));
            _vs().config.flags |= FLAG_DEBT;
            return amount;
        }
        return _repay(token, amount, IERC20(debtToken).balanceOf(address(this)));
    }

    /// @dev Withdraws min(amount, lent) of basket asset `i`, where `lent` is the aToken balance now;
    ///      all of it goes as type(uint256).max, which leaves no aToken dust, and clears the asset's
    ///      supply bit (with nothing left, as after a liquidation took it all, that is all it does).
    function _withdrawCollateral(address token, uint256 amount, uint256 i, uint256 lent)
        internal
        returns (uint256 done)
    {
        uint256 amt = Math.min(amount, lent);
        if (amt != 0) done = lendingPool.withdraw(token, amt == lent ? type(uint256).max : amt, address(this));
        if (amt == lent) _vs().config.supplyMask &= ~uint8(1 << i);
    }

    /// @dev Repays min(amount, owed, wallet) of the debt asset, where `owed` is the debt token balance
    ///      now; repaying all of it clears FLAG_DEBT (with no debt left, as after a liquidation
    ///      repaid it all, that is all it does).
    function _repay(address token, uint256 amount, uint256 owed) internal returns (uint256 done) {
        uint256 amt = Math.min(Math.min(amount, owed), IERC20(token).balanceOf(address(this)));
        if (amt == 0 && owed != 0) revert ZeroAmount();
        if (amt != 0) {
            IERC20(token).forceApprove(address(lendingPool), amt);
            done = lendingPool.repay(token, amt, VARIABLE_RATE, address(this));
            IERC20(token).forceApprove(address(lendingPool), 0);
        }
        if (done == owed) _vs().config.flags &= ~FLAG_DEBT;
    }

    /// @dev (LTV bps, health factor, has debt) from the pool; LTV = debt / collateral, rounded up.
    function _ltvNow() internal view returns (uint256 ltv, uint256 hf, bool hasDebt) {
        // no debt: the health factor is unbounded and swaps cannot change it, so skip the (costly)
        // pool read. FLAG_DEBT is set by every Borrow and cleared only when the debt token reads 0.
        if (address(lendingPool) == address(0) || _vs().config.flags & FLAG_DEBT == 0) {
            return (0, type(uint256).max, false);
        }
        (uint256 coll, uint256 debt,,,, uint256 h) = lendingPool.getUserAccountData(address(this));
        return (_ltvBps(coll, debt), h, debt != 0);
    }

    // ─────────────────────────── accounting ───────────────────────────

    /// @dev The basket, every feed read once (checked), every balance read once (wallet, and the
    ///      pool's for the assets with a position), and the net values before any swap.
    function _book(Config memory cfg) internal view returns (Book memory b) {
        b.a = _basket(cfg.basket);
        (b.p,) = _prices(b.a, true);
        b.held = new uint256[](b.a.length);
        for (uint256 i; i < b.a.length; ++i) {
            b.held[i] = IERC20(b.a[i].token).balanceOf(address(this));
        }
        (b.lent, b.owed) = _lending(b.a, cfg);
        (b.net, b.nav) = _netOf(b);
        b.targets = _targets(b.a);
    }

    /// @dev Net value per asset (wallet + aToken balance - debt token balance, at the book's prices)
    ///      and their sum, E18 USD, with checked arithmetic and casts (a value past int256 reverts
    ///      rather than wraps).
    function _netOf(Book memory b) internal pure returns (int256[] memory net, int256 nav) {
        net = new int256[](b.a.length);
        for (uint256 i; i < b.a.length; ++i) {
            uint8 dec = b.a[i].decimals;
            net[i] = OracleLib.valueE18(b.held[i] + b.lent[i], b.p[i], dec).toInt256();
            if (b.owed[i] != 0) net[i] -= OracleLib.valueE18(b.owed[i], b.p[i], dec).toInt256();
            nav += net[i];
        }
    }

    /// @dev (total assets in the deposit asset's units, every feed good) for the views: never reverts
    ///      (clamped answers, saturating math). `good` is false whenever _strictAssets would revert.
    function _totalAssets() internal view returns (uint256 ta, bool good) {
        Config memory cfg = _vs().config;
        Asset[] memory a = _basket(cfg.basket);
        if (a.length == 0) return (IERC20(asset()).balanceOf(address(this)), true);
        uint256[] memory p;
        (p, good) = _prices(a, false);
        (uint256 longs, uint256 debts) = _longsAndDebts(a, p, cfg);
        // past int256 the checked NAV reverts: no action can be priced
        if (longs > uint256(type(int256).max)) good = false;
        if (longs <= debts) return (0, good);
        uint256 i = _indexOf(a, asset());
        ta = _mulDivSat(longs - debts, OracleLib.unit(a[i].decimals), p[i], Math.Rounding.Floor);
        if (ta == type(uint256).max) good = false;
    }

    /// @dev Total assets for the actions and previews: the book's NAV (checked feeds, checked
    ///      arithmetic: reverts) in the deposit asset's units, 0 when the NAV is not positive.
    function _strictAssets() internal view returns (uint256) {
        Config memory cfg = _vs().config;
        if (cfg.basket == address(0)) return IERC20(asset()).balanceOf(address(this));
        Book memory b = _book(cfg);
        if (b.nav <= 0) return 0;
        uint256 i = _indexOf(b.a, asset());
        return OracleLib.amountRaw(uint256(b.nav), b.p[i], b.a[i].decimals);
    }

    /// @dev ERC-4626 conversions at a given totalAssets (OpenZeppelin's formula with the virtual
    ///      offset), saturating instead of overflowing.
    function _toShares(uint256 assets, uint256 ta, Math.Rounding rounding) internal view returns (uint256) {
        return _mulDivSat(assets, totalSupply() + 10 ** DECIMALS_OFFSET, Math.saturatingAdd(ta, 1), rounding);
    }

    function _toAssets(uint256 shares, uint256 ta, Math.Rounding rounding) internal view returns (uint256) {
        return _mulDivSat(shares, Math.saturatingAdd(ta, 1), totalSupply() + 10 ** DECIMALS_OFFSET, rounding);
    }

    /// @dev Deposit headroom under the cap at `ta` (no cap: type(uint256).max).
    function _depositRoom(uint256 ta) internal view returns (uint256) {
        uint256 cap = _vs().depositCapRaw;
        if (cap == type(uint256).max) return cap;
        return ta >= cap ? 0 : cap - ta;
    }

    /// @dev Shares mintable under the deposit headroom; previewMint of it stays within the headroom.
    function _mintRoom(uint256 ta) internal view returns (uint256) {
        uint256 room = _depositRoom(ta);
        return room == type(uint256).max ? room : _toShares(room, ta, Math.Rounding.Floor);
    }

    function _withdrawRoom(address owner, uint256 ta) internal view returns (uint256) {
        uint256 idle = IERC20(asset()).balanceOf(address(this));
        return Math.min(_toAssets(balanceOf(owner), ta, Math.Rounding.Floor), idle);
    }

    /// @dev The owner's shares, capped by the most shares s the idle balance pays: s * (ta + 1) must
    ///      stay below (idle + 1) * (supply + offset), the exact inverse of redeem's rounding down.
    function _redeemRoom(address owner, uint256 ta) internal view returns (uint256) {
        uint256 idle = IERC20(asset()).balanceOf(address(this));
        uint256 payable_ = _mulDivSat(
            Math.saturatingAdd(idle, 1), totalSupply() + 10 ** DECIMALS_OFFSET, Math.saturatingAdd(ta, 1), Math.Rounding.Ceil
        ) - 1;
        return Math.min(balanceOf(owner), payable_);
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
        bytes memory ret = Address.functionDelegateCall(_ADMIN_MODULE, msg.data);
        // returns the module's ABI-encoded result verbatim (a revert has already bubbled)
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            return(add(ret, 32), mload(ret))
        }
    }
}
