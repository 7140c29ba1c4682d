// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";
import {IAavePool} from "../interfaces/IAavePool.sol";
import {IUniswapV3FactoryPools, IUniswapV3PoolObserve} from "../interfaces/IUniswapV3Oracle.sol";
import {OracleLib} from "./OracleLib.sol";
import {TwapLib} from "./TwapLib.sol";
import {WeightsLib} from "./WeightsLib.sol";
import {VaultBase} from "./VaultBase.sol";

/// @title VaultAdmin
/// @notice The admin setters and keeperView of RebalancingVault. Deployed by the vault's constructor
///         and only ever run by delegatecall from the vault, on the vault's storage (VaultBase layout).
///         Called directly it acts on its own empty storage, where nobody holds a role.
contract VaultAdmin is VaultBase {
    /// @notice Deployed by the vault's constructor with the vault's own asset and pool.
    /// @param usdc The vault's deposit asset (for the shared immutables).
    /// @param pool The vault's lending pool (read by keeperView).
    constructor(IERC20 usdc, IAavePool pool) VaultBase(usdc, pool, address(0), "", "") {}

    // ─────────────────────────── admin ───────────────────────────

    /// @notice Replace the basket. Targets must sum to 10,000 bps, with no duplicates and the deposit
    ///         asset included; an asset may only leave the basket with no balance and no position.
    /// @param configs The new basket.
    function setBasket(AssetConfig[] calldata configs) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint256 n = configs.length;
        if (n == 0 || n > MAX_ASSETS) revert BasketSizeInvalid(n, MAX_ASSETS);
        _clearBasket(configs);
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            AssetConfig calldata c = configs[i];
            if (_vs().slotOf[c.token] != 0) revert DuplicateAsset(c.token);
            _vs().assets.push(_validated(c));
            _vs().slotOf[c.token] = i + 1;
            sum += c.targetBps;
            emit AssetConfigured(
                c.token, c.feed, c.targetBps, c.innerBandBps, c.outerBandBps, c.heartbeat, c.minAnswer, c.maxAnswer
            );
        }
        if (sum != BPS) revert WeightsSumInvalid(sum, BPS);
        if (_vs().slotOf[asset()] == 0) revert DepositAssetMissing(asset());
        emit BasketSet(n);
    }

    /// @notice Allow or disallow a swap router.
    /// @param router Router address.
    /// @param allowed Whether the keeper may use it.
    function setRouter(address router, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (router == address(0)) revert ZeroAddress();
        _vs().isRouter[router] = allowed;
        emit RouterSet(router, allowed);
    }

    /// @notice Set the trading limits (slippage <= 500 bps, loss cap <= 1,000 bps, cooldown <= 7 days,
    ///         loss period in [1 h, 30 days], ripcord cap <= trade cap).
    /// @param limits_ The new limits.
    function setLimits(Limits calldata limits_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setLimits(limits_);
    }

    /// @notice Set the collateral targets (min <= target <= max < ripcord <= 9,500 bps; HF floor in [1.01, 5]).
    /// @param params The new parameters.
    function setCollateralParams(CollateralParams calldata params) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setCollateralParams(params);
    }

    /// @notice Set the oracle-vs-TWAP guard of rebalance legs. `window` 0 turns it off; on, the
    ///         factory must be set, the window in [5 min, 1 day] and the limit in [10, 2,000] bps.
    /// @param guard The new guard.
    function setTwapGuard(TwapGuard calldata guard) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (guard.window != 0) {
            if (guard.factory == address(0)) revert ZeroAddress();
            if (guard.window < MIN_TWAP_WINDOW || guard.window > MAX_TWAP_WINDOW) {
                revert ParamOutOfRange("twapWindow", guard.window, MIN_TWAP_WINDOW, MAX_TWAP_WINDOW);
            }
            if (guard.maxDeviationBps < MIN_TWAP_DEVIATION_BPS || guard.maxDeviationBps > MAX_TWAP_DEVIATION_BPS) {
                revert ParamOutOfRange(
                    "twapMaxDeviationBps", guard.maxDeviationBps, MIN_TWAP_DEVIATION_BPS, MAX_TWAP_DEVIATION_BPS
                );
            }
        }
        _vs().twap = guard;
        emit TwapGuardSet(guard);
    }

    // ─────────────────────────── TWAP guard ───────────────────────────

    /// @notice Reverts unless every hop of every leg trades in a pool whose TWAP is within the
    ///         guard's limit of the oracles' price. Run by rebalance through delegatecall before any
    ///         swap, so the legs cannot move what later legs are checked against (a TWAP ignores the
    ///         current block anyway). Reads only. A pool without the window's history reverts too.
    ///         Takes rebalance's own arguments, so the vault forwards its calldata unchanged.
    /// @param swaps The rebalance legs.
    function checkTwap(SwapLeg[] calldata swaps, uint256, uint256) external view {
        TwapGuard memory g = _vs().twap;
        if (g.window == 0) return;
        uint256[] memory pricesE18 = _prices(_vs().assets);
        for (uint256 k; k < swaps.length; ++k) {
            _checkLegTwap(g, swaps[k], pricesE18);
        }
    }

    function _checkLegTwap(TwapGuard memory g, SwapLeg calldata leg, uint256[] memory pricesE18) internal view {
        if (leg.path.length == 0) {
            _checkHop(g, leg.tokenIn, leg.tokenOut, leg.fee, pricesE18);
            return;
        }
        bytes calldata path = leg.path;
        for (uint256 off; off + 43 <= path.length; off += 23) {
            _checkHop(
                g,
                address(bytes20(path[off:off + 20])),
                address(bytes20(path[off + 23:off + 43])),
                uint24(bytes3(path[off + 20:off + 23])),
                pricesE18
            );
        }
    }

    function _checkHop(TwapGuard memory g, address tokenA, address tokenB, uint24 fee, uint256[] memory p)
        internal
        view
    {
        (address t0, address t1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
        address pool = IUniswapV3FactoryPools(g.factory).getPool(t0, t1, fee);
        if (pool == address(0)) revert TwapUnavailable(pool);
        uint256 twap = TwapLib.priceX96(_meanTick(pool, g.window));
        (uint256 i0, uint256 i1) = (_indexOf(t0), _indexOf(t1));
        uint256 oracle =
            TwapLib.oraclePriceX96(p[i0], _vs().assets[i0].decimals, p[i1], _vs().assets[i1].decimals);
        if (oracle == 0) revert TwapUnavailable(pool);
        uint256 dev = TwapLib.deviationBps(twap, oracle);
        if (dev > g.maxDeviationBps) revert TwapDeviationTooHigh(pool, dev, g.maxDeviationBps);
    }

    function _meanTick(address pool, uint32 window) internal view returns (int256) {
        uint32[] memory ago = new uint32[](2);
        ago[0] = window;
        try IUniswapV3PoolObserve(pool).observe(ago) returns (int56[] memory cum, uint160[] memory) {
            if (cum.length != 2) revert TwapUnavailable(pool);
            return TwapLib.meanTick(cum[0], cum[1], window);
        } catch {
            revert TwapUnavailable(pool);
        }
    }

    // ─────────────────────────── keeper view ───────────────────────────

    /// @notice Everything the keeper needs in one call; never reverts on a stale or bad feed (that
    ///         asset then shows feedOk = false and zero value/weight). Batchable with Multicall3.
    /// @return v The vault's state as the keeper reads it.
    function buildKeeperView() external view returns (KeeperView memory v) {
        Asset[] memory a = _vs().assets;
        v.assets = new AssetView[](a.length);
        int256 nav;
        v.feedsOk = true;
        for (uint256 i; i < a.length; ++i) {
            v.assets[i] = _assetView(a[i]);
            v.feedsOk = v.feedsOk && v.assets[i].feedOk;
            nav += v.assets[i].netValueE18;
        }
        v.navE18 = nav > 0 ? uint256(nav) : 0;
        for (uint256 i; i < a.length; ++i) {
            v.assets[i].weightBps = WeightsLib.weightBpsClamped(v.assets[i].netValueE18, nav);
        }
        _fillCollateralView(v);
        _fillLimitsView(v);
    }

    // ─────────────────────────── view helpers ───────────────────────────

    function _assetView(Asset memory x) internal view returns (AssetView memory w) {
        (w.token, w.decimals, w.targetBps, w.innerBandBps, w.outerBandBps) =
            (x.token, x.decimals, x.targetBps, x.innerBandBps, x.outerBandBps);
        (w.feed, w.feedDecimals, w.heartbeat, w.minAnswer, w.maxAnswer) =
            (x.feed, x.feedDecimals, x.heartbeat, x.minAnswer, x.maxAnswer);
        bool readable;
        (w.answer, w.updatedAt, readable) = OracleLib.tryRead(x.feed);
        w.feedOk = readable && OracleLib.isGood(w.answer, w.updatedAt, x.heartbeat, x.minAnswer, x.maxAnswer);
        Position memory pos = _vs().positions[x.token];
        (w.heldRaw, w.suppliedRaw, w.borrowedRaw) =
            (IERC20(x.token).balanceOf(address(this)), pos.supplied, pos.borrowed);
        uint256 long = w.heldRaw + w.suppliedRaw;
        w.balance = long > w.borrowedRaw ? long - w.borrowedRaw : 0;
        if (!w.feedOk) return w;
        uint256 price = OracleLib.toE18(w.answer, x.feedDecimals);
        w.netValueE18 = int256(OracleLib.valueE18(long, price, x.decimals))
            - int256(OracleLib.valueE18(w.borrowedRaw, price, x.decimals));
        w.valueE18 = w.netValueE18 > 0 ? uint256(w.netValueE18) : 0;
    }

    function _fillCollateralView(KeeperView memory v) internal view {
        CollateralParams memory c = _vs().collateral;
        (v.targetLtvBps, v.minLtvBps, v.maxLtvBps, v.ripcordLtvBps) =
            (c.targetLtvBps, c.minLtvBps, c.maxLtvBps, c.ripcordLtvBps);
        (v.minHealthFactor, v.debtAsset) = (c.minHealthFactor, c.debtAsset);
        v.healthFactor = type(uint256).max;
        if (address(lendingPool) == address(0)) return;
        try lendingPool.getUserAccountData(address(this)) returns (
            uint256 coll, uint256 debt, uint256, uint256 lt, uint256, uint256 hf
        ) {
            (v.collateralBase, v.debtBase, v.healthFactor) = (coll, debt, hf);
            v.ltvBps = uint16(Math.min(_ltvBps(coll, debt), type(uint16).max));
            v.liquidationThresholdBps = uint16(Math.min(lt, type(uint16).max));
            // a failing pool read leaves the collateral fields at their defaults: keeperView never reverts
            // solhint-disable-next-line no-empty-blocks
        } catch {}
    }

    function _fillLimitsView(KeeperView memory v) internal view {
        Limits memory lim = _vs().limits;
        (v.cooldown, v.maxTradeE18, v.maxSlippageBps, v.lossCapBps, v.lossPeriod) =
            (lim.cooldown, lim.maxTradeE18, lim.maxSlippageBps, lim.lossCapBps, lim.lossPeriod);
        (v.ripcordMaxTradeE18, v.depositCapRaw) = (lim.ripcordMaxTradeE18, lim.depositCapRaw);
        (v.epoch, v.lastRebalanceTs, v.lastCollateralTs) = (_vs().epoch, _vs().lastRebalanceTs, _vs().lastCollateralTs);
        bool newPeriod = block.timestamp >= _vs().lossPeriodStartTs + lim.lossPeriod;
        (v.periodLossE18, v.lossPeriodStartTs) = (newPeriod ? 0 : _vs().periodLossE18, _vs().lossPeriodStartTs);
        (v.paused, v.blockTimestamp, v.totalSupply) = (paused(), block.timestamp, totalSupply());
    }

    // ─────────────────────────── setters ───────────────────────────

    /// @dev Removes the old basket; an asset that leaves must hold nothing and have no position.
    function _clearBasket(AssetConfig[] calldata next) internal {
        for (uint256 i; i < _vs().assets.length; ++i) {
            address t = _vs().assets[i].token;
            bool stays;
            for (uint256 j; j < next.length && !stays; ++j) {
                stays = next[j].token == t;
            }
            Position memory pos = _vs().positions[t];
            uint256 held = IERC20(t).balanceOf(address(this));
            if (!stays && (held != 0 || pos.supplied != 0 || pos.borrowed != 0)) {
                revert AssetStillHeld(t, held, uint256(pos.supplied) + pos.borrowed);
            }
            delete _vs().slotOf[t];
        }
        delete _vs().assets;
    }

    function _validated(AssetConfig calldata c) internal view returns (Asset memory x) {
        if (c.token == address(0) || c.feed == address(0)) revert ZeroAddress();
        if (c.innerBandBps == 0 || c.innerBandBps >= c.outerBandBps || c.outerBandBps > MAX_BAND_BPS) {
            revert BandsInvalid(c.token, c.innerBandBps, c.outerBandBps);
        }
        if (c.heartbeat == 0 || c.heartbeat > MAX_HEARTBEAT) revert HeartbeatInvalid(c.token, c.heartbeat, MAX_HEARTBEAT);
        if (c.minAnswer <= 0 || c.minAnswer >= c.maxAnswer || c.maxAnswer > type(int128).max) {
            revert FeedBoundsInvalid(c.feed, c.minAnswer, c.maxAnswer);
        }
        uint8 tokenDecimals = IERC20Metadata(c.token).decimals();
        if (tokenDecimals > 18) revert DecimalsInvalid(c.token, tokenDecimals);
        uint8 feedDecimals = IAggregatorV3(c.feed).decimals();
        if (feedDecimals > 18) revert DecimalsInvalid(c.feed, feedDecimals);
        x = Asset(
            c.token,
            c.targetBps,
            c.innerBandBps,
            c.outerBandBps,
            c.heartbeat,
            tokenDecimals,
            c.feed,
            feedDecimals,
            int128(c.minAnswer),
            int128(c.maxAnswer)
        );
    }

    function _setLimits(Limits memory lim) internal {
        if (lim.maxSlippageBps > MAX_SLIPPAGE_BPS) revert SlippageTooHigh(lim.maxSlippageBps, MAX_SLIPPAGE_BPS);
        if (lim.lossCapBps > MAX_LOSS_CAP_BPS) {
            revert ParamOutOfRange("lossCapBps", lim.lossCapBps, 0, MAX_LOSS_CAP_BPS);
        }
        if (lim.cooldown > MAX_COOLDOWN) revert ParamOutOfRange("cooldown", lim.cooldown, 0, MAX_COOLDOWN);
        if (lim.lossPeriod < MIN_LOSS_PERIOD || lim.lossPeriod > MAX_LOSS_PERIOD) {
            revert ParamOutOfRange("lossPeriod", lim.lossPeriod, MIN_LOSS_PERIOD, MAX_LOSS_PERIOD);
        }
        if (lim.ripcordMaxTradeE18 > lim.maxTradeE18) {
            revert ParamOutOfRange("ripcordMaxTradeE18", lim.ripcordMaxTradeE18, 0, lim.maxTradeE18);
        }
        _vs().limits = lim;
        emit LimitsSet(lim);
    }

    function _setCollateralParams(CollateralParams memory c) internal {
        if (c.debtAsset == address(0)) revert ZeroAddress();
        if (c.minLtvBps > c.targetLtvBps || c.targetLtvBps > c.maxLtvBps) {
            revert ParamOutOfRange("targetLtvBps", c.targetLtvBps, c.minLtvBps, c.maxLtvBps);
        }
        if (c.ripcordLtvBps <= c.maxLtvBps || c.ripcordLtvBps > MAX_RIPCORD_LTV_BPS) {
            revert ParamOutOfRange("ripcordLtvBps", c.ripcordLtvBps, uint256(c.maxLtvBps) + 1, MAX_RIPCORD_LTV_BPS);
        }
        if (c.minHealthFactor < MIN_HEALTH_FLOOR || c.minHealthFactor > MAX_HEALTH_FLOOR) {
            revert ParamOutOfRange("minHealthFactor", c.minHealthFactor, MIN_HEALTH_FLOOR, MAX_HEALTH_FLOOR);
        }
        _vs().collateral = c;
        emit CollateralParamsSet(c);
    }
}
