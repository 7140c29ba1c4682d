// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";
import {TransientSlot} from "@openzeppelin/contracts/utils/TransientSlot.sol";

import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";
import {IAavePool} from "../interfaces/IAavePool.sol";
import {IUniswapV3PoolObserve} from "../interfaces/IUniswapV3Oracle.sol";
import {OracleLib} from "./OracleLib.sol";
import {TwapLib} from "./TwapLib.sol";
import {WeightsLib} from "./WeightsLib.sol";
import {VaultBase} from "./VaultBase.sol";

/// @title VaultAdmin
/// @notice The admin setters and keeperView of RebalancingVault. Deployed by the vault's constructor
///         and only ever run by delegatecall from the vault, on the vault's storage (VaultBase layout).
///         Called directly it acts on its own empty storage, where nobody holds a role.
contract VaultAdmin is VaultBase {
    using SafeCast for uint256;
    using TransientSlot for TransientSlot.Bytes32Slot;

    /// @dev keccak256 of the Uniswap v3 pool creation code (v3-periphery's PoolAddress), so a pool's
    ///      address comes from CREATE2 rather than a factory call. A factory whose pools have other
    ///      code gives addresses without code, and the guard then fails closed (TwapUnavailable).
    bytes32 internal constant POOL_INIT_CODE_HASH = 0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54;
    /// @dev Words of Aave v3's ReserveData (IAavePool.getReserveData) holding the aToken and the
    ///      variable debt token.
    uint256 internal constant RESERVE_A_TOKEN_WORD = 8;
    uint256 internal constant RESERVE_DEBT_TOKEN_WORD = 10;

    /// @notice Deployed by the vault's constructor with the vault's own asset and pool.
    /// @param usdc The vault's deposit asset (for the shared immutables).
    /// @param pool The vault's lending pool (read by keeperView).
    constructor(IERC20 usdc, IAavePool pool) VaultBase(usdc, pool, address(0), "", "") {}

    // ─────────────────────────── admin ───────────────────────────

    /// @notice Replace the basket. Targets must sum to 10,000 bps, with no duplicates and the deposit
    ///         asset included; an asset may only leave the basket with no balance and no position.
    ///         The basket is written once into the code of a data contract (read with one
    ///         EXTCODECOPY by every keeper action and ERC-4626 call), followed by each asset's
    ///         aToken and variable debt token from the lending pool's reserve data, so that valuing
    ///         the position never asks the pool where they are.
    /// @param configs The new basket.
    function setBasket(AssetConfig[] calldata configs) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint256 n = configs.length;
        if (n == 0 || n > MAX_ASSETS) revert BasketSizeInvalid(n, MAX_ASSETS);
        uint8 mask = _carryPositions(configs);
        uint256[] memory words = new uint256[](5 * n); // 3n basket words, then 2n pool token words
        uint256 sum;
        bool hasDepositAsset;
        for (uint256 i; i < n; ++i) {
            AssetConfig calldata c = configs[i];
            for (uint256 j; j < i; ++j) {
                if (configs[j].token == c.token) revert DuplicateAsset(c.token);
            }
            sum += c.targetBps;
            hasDepositAsset = hasDepositAsset || c.token == asset();
            (words[3 * i], words[3 * i + 1], words[3 * i + 2]) = _packAsset(_validated(c));
            _putPoolTokens(words, 3 * n + 2 * i, c.token);
            emit AssetConfigured(
                c.token, c.feed, c.targetBps, c.innerBandBps, c.outerBandBps, c.heartbeat, c.minAnswer, c.maxAnswer
            );
        }
        if (sum != BPS) revert WeightsSumInvalid(sum, BPS);
        if (!hasDepositAsset) revert DepositAssetMissing(asset());
        bytes memory data = abi.encode(words);
        // the encoded length says 3n: abi.decode in _basket reads the basket words and stops there,
        // and _poolTokens finds the pool token words after them
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            mstore(add(data, 64), mul(3, n))
        }
        _vs().config.basket = _writeData(data);
        _vs().config.supplyMask = mask;
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
        uint8 flags = _vs().config.flags;
        _vs().config.flags = guard.window != 0 ? flags | FLAG_TWAP : flags & ~FLAG_TWAP;
        emit TwapGuardSet(guard);
    }

    // ─────────────────────────── TWAP guard ───────────────────────────

    /// @notice Reverts unless every hop of every leg trades in a pool whose TWAP is within the
    ///         guard's limit of the oracles' price. Run by rebalance through delegatecall before any
    ///         swap, so the legs cannot move what later legs are checked against (a TWAP ignores the
    ///         current block anyway). Reads only. A pool without the window's history reverts too.
    ///         Takes rebalance's own arguments, so the vault forwards its calldata unchanged.
    ///         The oracle prices are this call's own, left in transient storage by the vault.
    /// @param swaps The rebalance legs.
    function checkTwap(SwapLeg[] calldata swaps, uint256, uint256) external view {
        TwapGuard memory g = _vs().twap;
        if (g.window == 0) return;
        for (uint256 k; k < swaps.length; ++k) {
            _checkLegTwap(g, swaps[k]);
        }
    }

    function _checkLegTwap(TwapGuard memory g, SwapLeg calldata leg) internal view {
        if (leg.path.length == 0) {
            _checkHop(g, leg.tokenIn, leg.tokenOut, leg.fee);
            return;
        }
        bytes calldata path = leg.path;
        for (uint256 off; off + 43 <= path.length; off += 23) {
            _checkHop(
                g,
                address(bytes20(path[off:off + 20])),
                address(bytes20(path[off + 23:off + 43])),
                uint24(bytes3(path[off + 20:off + 23]))
            );
        }
    }

    function _checkHop(TwapGuard memory g, address tokenA, address tokenB, uint24 fee) internal view {
        (address t0, address t1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
        address pool = Create2.computeAddress(keccak256(abi.encode(t0, t1, fee)), POOL_INIT_CODE_HASH, g.factory);
        if (pool.code.length == 0) revert TwapUnavailable(pool);
        uint256 twap = TwapLib.priceX96(_meanTick(pool, g.window));
        (uint256 p0, uint8 d0) = _twapPrice(t0);
        (uint256 p1, uint8 d1) = _twapPrice(t1);
        uint256 oracle = TwapLib.oraclePriceX96(p0, d0, p1, d1);
        if (oracle == 0) revert TwapUnavailable(pool);
        uint256 dev = TwapLib.deviationBps(twap, oracle);
        if (dev > g.maxDeviationBps) revert TwapDeviationTooHigh(pool, dev, g.maxDeviationBps);
    }

    /// @dev The checked oracle price and decimals the vault read for `token` in this call.
    function _twapPrice(address token) internal view returns (uint256 priceE18, uint8 decimals) {
        uint256 v = uint256(_twapPriceSlot(token).tload());
        if (v == 0) revert NotBasketAsset(token);
        return (v >> 8, uint8(v));
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
        Config memory cfg = _vs().config;
        Asset[] memory a = _basket(cfg.basket);
        (uint256[] memory lent, uint256[] memory owed) = _lending(a, cfg);
        v.assets = new AssetView[](a.length);
        int256 nav;
        v.feedsOk = true;
        for (uint256 i; i < a.length; ++i) {
            v.assets[i] = _assetView(a[i], lent[i], owed[i]);
            v.feedsOk = v.feedsOk && v.assets[i].feedOk;
            nav = _addSat(nav, v.assets[i].netValueE18);
        }
        v.navE18 = nav > 0 ? uint256(nav) : 0;
        for (uint256 i; i < a.length; ++i) {
            v.assets[i].weightBps = WeightsLib.weightBpsClamped(v.assets[i].netValueE18, nav);
        }
        _fillCollateralView(v);
        _fillLimitsView(v, cfg);
    }

    // ─────────────────────────── view helpers ───────────────────────────

    /// @dev One asset's view, its pool position as the pool holds it (`lent`, `owed`: see _lending);
    ///      values saturate (never revert) far past any real balance.
    function _assetView(Asset memory x, uint256 lent, uint256 owed) internal view returns (AssetView memory w) {
        (w.token, w.decimals, w.targetBps, w.innerBandBps, w.outerBandBps) =
            (x.token, x.decimals, x.targetBps, x.innerBandBps, x.outerBandBps);
        (w.feed, w.feedDecimals, w.heartbeat, w.minAnswer, w.maxAnswer) =
            (x.feed, x.feedDecimals, x.heartbeat, x.minAnswer, x.maxAnswer);
        bool readable;
        (w.answer, w.updatedAt, readable) = _tryRead(x.feed);
        w.feedOk = readable && OracleLib.isGood(w.answer, w.updatedAt, x.heartbeat, x.minAnswer, x.maxAnswer);
        (w.heldRaw, w.suppliedRaw, w.borrowedRaw) = (IERC20(x.token).balanceOf(address(this)), lent, owed);
        uint256 long = Math.saturatingAdd(w.heldRaw, w.suppliedRaw);
        w.balance = Math.saturatingSub(long, w.borrowedRaw);
        if (!w.feedOk) return w;
        uint256 price = OracleLib.toE18(w.answer, x.feedDecimals);
        uint256 unit = OracleLib.unit(x.decimals);
        int256 longValue = _toIntSat(_mulDivSat(long, price, unit, Math.Rounding.Floor));
        w.netValueE18 = longValue - _toIntSat(_mulDivSat(w.borrowedRaw, price, unit, Math.Rounding.Floor));
        w.valueE18 = w.netValueE18 > 0 ? uint256(w.netValueE18) : 0;
    }

    /// @dev min(v, type(int256).max) as int256.
    function _toIntSat(uint256 v) internal pure returns (int256) {
        return Math.min(v, uint256(type(int256).max)).toInt256();
    }

    /// @dev a + b for a NAV sum, saturating at type(int256).max (both sides are at most that).
    function _addSat(int256 a, int256 b) internal pure returns (int256) {
        if (a > 0 && b > type(int256).max - a) return type(int256).max;
        return a + b;
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

    function _fillLimitsView(KeeperView memory v, Config memory cfg) internal view {
        TradeCaps memory t = _vs().caps;
        (v.cooldown, v.maxTradeE18, v.maxSlippageBps, v.lossCapBps, v.lossPeriod) =
            (cfg.cooldown, t.maxTradeE18, cfg.maxSlippageBps, cfg.lossCapBps, cfg.lossPeriod);
        (v.ripcordMaxTradeE18, v.depositCapRaw) = (t.ripcordMaxTradeE18, _vs().depositCapRaw);
        KeeperState memory st = _vs().state;
        (v.epoch, v.lastRebalanceTs, v.lastCollateralTs) = (st.epoch, st.lastRebalanceTs, st.lastCollateralTs);
        uint256 bucket;
        (v.lossInWindowE8, bucket) = _lossWindow(st, cfg.lossPeriod);
        v.lossWindowStartTs = Math.saturatingSub(bucket, LOSS_BUCKETS_PER_PERIOD) * _bucketLength(cfg.lossPeriod);
        (v.paused, v.blockTimestamp, v.totalSupply) = (paused(), block.timestamp, totalSupply());
    }

    // ─────────────────────────── setters ───────────────────────────

    /// @dev The supply bits of the new basket (an asset that stays keeps its bit at its new index).
    ///      An asset that leaves must hold nothing and have no position in the pool on record: no
    ///      supply bit, and not the debt asset while FLAG_DEBT is set (a position a liquidation
    ///      emptied is closed on record by a Withdraw or Repay, which then find nothing to move).
    function _carryPositions(AssetConfig[] calldata next) internal view returns (uint8 mask) {
        Config memory cfg = _vs().config;
        Asset[] memory old = _basket(cfg.basket);
        address debtAsset = cfg.flags & FLAG_DEBT != 0 ? _vs().collateral.debtAsset : address(0);
        for (uint256 i; i < old.length; ++i) {
            address t = old[i].token;
            bool supplied = cfg.supplyMask & (1 << i) != 0;
            uint256 j;
            while (j < next.length && next[j].token != t) ++j;
            if (j < next.length) {
                if (supplied) mask |= uint8(1 << j);
                continue;
            }
            uint256 held = IERC20(t).balanceOf(address(this));
            if (held != 0 || supplied || t == debtAsset) revert AssetStillHeld(t, held, supplied || t == debtAsset);
        }
    }

    /// @dev Writes the lending pool's aToken and variable debt token of `token` into w[k], w[k + 1]:
    ///      zero without a pool, and zero too for an asset the pool does not list (which then cannot
    ///      be supplied or borrowed: ReserveNotListed).
    function _putPoolTokens(uint256[] memory w, uint256 k, address token) internal view {
        if (address(lendingPool) == address(0)) return;
        uint256[15] memory r = lendingPool.getReserveData(token);
        (w[k], w[k + 1]) = (uint160(r[RESERVE_A_TOKEN_WORD]), uint160(r[RESERVE_DEBT_TOKEN_WORD]));
    }

    /// @dev Deploys a data contract whose code is `data` (the SSTORE2 pattern). `data` is an ABI
    ///      encoding, whose first byte is 0x00 (STOP), so calling the contract does nothing.
    function _writeData(bytes memory data) internal returns (address ptr) {
        // init code: PUSH2 len, DUP1, PUSH1 0x0a, RETURNDATASIZE, CODECOPY, RETURNDATASIZE, RETURN
        bytes memory init = abi.encodePacked(hex"61", data.length.toUint16(), hex"80600a3d393df3", data);
        // Solidity cannot create a contract from given runtime bytes; this is the one create call
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            ptr := create(0, add(init, 32), mload(init))
        }
        if (ptr == address(0)) revert ZeroAddress();
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
        if (lim.maxTradeE18 > type(uint128).max) {
            revert ParamOutOfRange("maxTradeE18", lim.maxTradeE18, 0, type(uint128).max);
        }
        Config storage c = _vs().config;
        if (lim.lossPeriod != c.lossPeriod) _rebaseLossRing(uint24(lim.lossPeriod));
        (c.maxSlippageBps, c.lossCapBps) = (lim.maxSlippageBps, lim.lossCapBps);
        (c.cooldown, c.lossPeriod) = (uint24(lim.cooldown), uint24(lim.lossPeriod)); // both checked above
        _vs().caps = TradeCaps(uint128(lim.maxTradeE18), uint128(lim.ripcordMaxTradeE18));
        _vs().depositCapRaw = lim.depositCapRaw;
        emit LimitsSet(lim);
    }

    /// @dev A new lossPeriod changes the bucket length: everything the ring still counts moves into
    ///      the current bucket of the new length (counted a full window more, never less).
    function _rebaseLossRing(uint24 newPeriod) internal {
        KeeperState storage st = _vs().state;
        (uint256 used,) = _lossWindow(st, _vs().config.lossPeriod);
        uint256 bucket = block.timestamp / _bucketLength(newPeriod);
        st.lossBucket = bucket.toUint32();
        st.lossRing = (used << (24 * (bucket & 3))).toUint96();
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
        // the NAV reads the debt token of the configured debt asset alone, so it changes only with no
        // debt on record (a debt a liquidation repaid in full is closed on record by a Repay)
        address debtAsset = _vs().collateral.debtAsset;
        if (c.debtAsset != debtAsset && _vs().config.flags & FLAG_DEBT != 0) revert DebtOutstanding(debtAsset);
        _vs().collateral = c;
        emit CollateralParamsSet(c);
    }
}
