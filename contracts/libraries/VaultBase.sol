// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SlotDerivation} from "@openzeppelin/contracts/utils/SlotDerivation.sol";
import {TransientSlot} from "@openzeppelin/contracts/utils/TransientSlot.sol";

import {IRebalancingVault} from "../interfaces/IRebalancingVault.sol";
import {IAavePool} from "../interfaces/IAavePool.sol";
import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";
import {OracleLib} from "./OracleLib.sol";

/// @title VaultBase
/// @notice Constants, storage layout and shared helpers of RebalancingVault. The vault and its admin
///         module (VaultAdmin, reached by delegatecall) both inherit this, so they share one layout.
///         The split exists only to keep the vault's runtime code under the 24,576-byte EIP-170 limit
///         (the pattern Balancer v3 uses with VaultAdmin/VaultExtension).
abstract contract VaultBase is IRebalancingVault, ERC4626, AccessControl, Pausable, ReentrancyGuardTransient {

    // ─────────────────────────── constants ───────────────────────────

    /// @notice May call rebalance, adjustCollateral and ripcord.
    bytes32 public constant KEEPER_ROLE = keccak256("KEEPER_ROLE");
    /// @notice May pause (only the admin unpauses).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    uint16 internal constant BPS = 10_000;
    /// @notice Highest maxSlippageBps the admin may set.
    uint16 public constant MAX_SLIPPAGE_BPS = 500;
    /// @notice Highest lossCapBps the admin may set.
    uint16 public constant MAX_LOSS_CAP_BPS = 1_000;
    /// @notice Highest outerBandBps of a basket asset.
    uint16 public constant MAX_BAND_BPS = 5_000;
    /// @notice Highest ripcordLtvBps the admin may set.
    uint16 public constant MAX_RIPCORD_LTV_BPS = 9_500;
    /// @notice Longest feed heartbeat of a basket asset.
    uint32 public constant MAX_HEARTBEAT = 2 days;
    /// @notice Longest cooldown the admin may set.
    uint32 public constant MAX_COOLDOWN = 7 days;
    /// @notice Shortest loss-accounting period the admin may set.
    uint32 public constant MIN_LOSS_PERIOD = 1 hours;
    /// @notice Longest loss-accounting period the admin may set.
    uint32 public constant MAX_LOSS_PERIOD = 30 days;
    /// @notice Most assets a basket may hold.
    uint256 public constant MAX_ASSETS = 8;
    /// @notice Shortest TWAP window the guard accepts (a shorter one is cheap to move).
    uint32 public constant MIN_TWAP_WINDOW = 5 minutes;
    /// @notice Longest TWAP window the guard accepts.
    uint32 public constant MAX_TWAP_WINDOW = 1 days;
    /// @notice Tightest oracle-vs-TWAP limit (Chainlink's own deviation thresholds are 50-200 bps).
    uint16 public constant MIN_TWAP_DEVIATION_BPS = 10;
    /// @notice Loosest oracle-vs-TWAP limit (Gamma's 50-200% thresholds were fatal).
    uint16 public constant MAX_TWAP_DEVIATION_BPS = 2_000;
    /// @notice Lowest minHealthFactor the admin may set: 1.01, since an HF floor at or under 1.0
    ///         would allow liquidatable positions.
    uint256 public constant MIN_HEALTH_FLOOR = 1.01e18;
    /// @notice Highest minHealthFactor the admin may set.
    uint256 public constant MAX_HEALTH_FLOOR = 5e18;
    // offset 6: a donating first depositor leaves the victim >= 99.9999% (OZ inflation table)
    uint8 internal constant DECIMALS_OFFSET = 6;
    uint256 internal constant VARIABLE_RATE = 2;

    // ─────────────────────────── storage ───────────────────────────

    /// @dev One basket asset in memory. The basket lives in the code of a data contract written by
    ///      setBasket (three words per asset, read with one EXTCODECOPY instead of slots; see
    ///      _basket and _poolTokens for the layout).
    struct Asset {
        address token;
        uint16 targetBps;
        uint16 innerBandBps;
        uint16 outerBandBps;
        uint32 heartbeat;
        uint8 decimals;
        address feed;
        uint8 feedDecimals;
        int128 minAnswer;
        int128 maxAnswer;
    }

    /// @dev Slot 0: read by every keeper action and every ERC-4626 call, written by the admin setters
    ///      (and supplyMask and FLAG_DEBT by collateral actions). The two say which pool balances
    ///      the NAV reads: none when the vault has no lending position.
    struct Config {
        address basket; // data contract holding the basket's words; address(0) = no basket
        uint8 supplyMask; // bit i: basket asset i is supplied to the lending pool
        uint8 flags; // FLAG_PAUSED | FLAG_TWAP | FLAG_DEBT
        uint16 maxSlippageBps;
        uint16 lossCapBps;
        uint24 cooldown; // <= MAX_COOLDOWN (7 days < 2^24 s)
        uint24 lossPeriod; // <= MAX_LOSS_PERIOD (30 days < 2^24 s)
    }

    /// @dev Slot 1: read and written by every keeper action. The loss ring holds four 24-bit buckets
    ///      of lossPeriod / 3 seconds each (losses in 1e-8 of NAV); bucket b sits at bits 24 * (b & 3).
    struct KeeperState {
        uint32 epoch;
        uint40 lastRebalanceTs;
        uint40 lastCollateralTs;
        uint32 lossBucket; // index (timestamp / bucket length) of the newest bucket in the ring
        uint96 lossRing;
    }

    /// @dev Slot 2: the notional caps, E18 USD (setLimits refuses values above 2^128 - 1).
    struct TradeCaps {
        uint128 maxTradeE18;
        uint128 ripcordMaxTradeE18;
    }

    // the name is the public getter lendingPool() in the vault's ABI, so it stays mixedCase
    /// @notice The lending pool (address(0) disables the collateral position).
    IAavePool public immutable lendingPool; // solhint-disable-line immutable-vars-naming
    /// @dev The module that holds the admin setters and keeperView (delegatecalled, see VaultAdmin).
    address internal immutable _ADMIN_MODULE;

    /// @dev Everything the vault and its admin module both read and write, at one ERC-7201
    ///      namespace: the two contracts share it through delegatecall without depending on the
    ///      order of inherited state variables (and each one's reads and writes are visible to
    ///      static analysis as storage-pointer accesses rather than "never written" variables).
    ///      docs/vault.md lists the slots.
    /// @custom:storage-location erc7201:vaultkeeper.storage.RebalancingVault
    struct VaultStorage {
        Config config; // slot 0
        KeeperState state; // slot 1
        TradeCaps caps; // slot 2
        uint256 depositCapRaw; // slot 3
        CollateralParams collateral; // slots 4-5
        TwapGuard twap; // slot 6
        mapping(address router => bool allowed) isRouter; // slot 7
    }

    /// @dev Config.flags bit: paused (Pausable's own flag is not used, so one slot answers both).
    uint8 internal constant FLAG_PAUSED = 1;
    /// @dev Config.flags bit: the oracle-vs-TWAP guard is on.
    uint8 internal constant FLAG_TWAP = 2;
    /// @dev Config.flags bit: the vault borrowed collateral.debtAsset (its debt token is read). Only
    ///      the debt asset can be borrowed, and it cannot change while this debt is open.
    uint8 internal constant FLAG_DEBT = 4;
    /// @dev The basket's data contract: abi.encode(uint256[3n]) (64 + 96n bytes), then n pairs of
    ///      (aToken, variable debt token) words (64n bytes): 160 bytes per asset after the first 64.
    uint256 internal constant BASKET_HEAD_BYTES = 64;
    /// @dev Loss ring: buckets per lossPeriod, and the fraction unit (1e8 = all of NAV).
    uint256 internal constant LOSS_BUCKETS_PER_PERIOD = 3;
    uint256 internal constant LOSS_UNIT = 1e8;
    uint256 internal constant LOSS_UNITS_PER_BPS = 1e4;
    /// @dev Transient slot base of the per-token (price, decimals) the TWAP check reads.
    bytes32 internal constant _TWAP_PRICES_SLOT = keccak256("vaultkeeper.transient.twapPrices");

    // keccak256(abi.encode(uint256(keccak256("vaultkeeper.storage.RebalancingVault")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant _STORAGE_SLOT = 0x8c931bdcd43053c9da715cc33cb51ba79c9df8ecf52c3ed591be03a0bdbf2100;

    function _vs() internal pure returns (VaultStorage storage $) {
        // the one way to point a storage struct at an ERC-7201 slot (as OpenZeppelin's upgradeable contracts do)
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            $.slot := _STORAGE_SLOT
        }
    }

    // ─────────────────────────── construction ───────────────────────────

    /// @notice Sets the deposit asset, the share token's name and symbol, and the shared immutables.
    /// @param usdc The deposit asset.
    /// @param pool Aave-v3-style pool, or address(0) to disable the collateral position.
    /// @param adminModule The VaultAdmin module (address(0) inside the module itself).
    /// @param name_ Share token name.
    /// @param symbol_ Share token symbol.
    constructor(IERC20 usdc, IAavePool pool, address adminModule, string memory name_, string memory symbol_)
        ERC20(name_, symbol_)
        ERC4626(usdc)
    {
        lendingPool = pool;
        _ADMIN_MODULE = adminModule;
    }

    // ─────────────────────────── getters ───────────────────────────

    /// @notice Whether the keeper may name `router` in a SwapLeg.
    /// @param router Router address.
    function isRouter(address router) external view returns (bool) {
        return _vs().isRouter[router];
    }

    /// @notice Incremented by every successful rebalance, adjustCollateral and ripcord.
    function epoch() external view returns (uint256) {
        return _vs().state.epoch;
    }

    /// @notice Time of the last rebalance.
    function lastRebalanceTs() external view returns (uint256) {
        return _vs().state.lastRebalanceTs;
    }

    /// @notice Time of the last adjustCollateral.
    function lastCollateralTs() external view returns (uint256) {
        return _vs().state.lastCollateralTs;
    }

    /// @notice Loss against the oracle counted in the rolling window now, in 1e-8 of NAV (1e8 = all of
    ///         it); keeper actions revert once it would exceed lossCapBps * 1e4. See docs/vault.md.
    /// @return used The loss counted now, 1e-8 of NAV.
    function lossInWindowE8() external view returns (uint256 used) {
        (used,) = _lossWindow(_vs().state, _vs().config.lossPeriod);
    }

    /// @notice Pausable's paused(), from the vault's packed configuration slot.
    function paused() public view override returns (bool) {
        return _vs().config.flags & FLAG_PAUSED != 0;
    }

    // ─────────────────────────── shared helpers ───────────────────────────

    /// @dev The basket, decoded from its data contract (empty before setBasket): three words per
    ///      asset (see _packAsset), ABI-encoded as one uint256[]. The pool token words after that
    ///      encoding are not decoded here (abi.decode ignores them): _poolTokens reads them, and only
    ///      for an asset with a lending position.
    function _basket(address data) internal view returns (Asset[] memory a) {
        if (data == address(0)) return a;
        uint256[] memory w = abi.decode(data.code, (uint256[]));
        a = new Asset[](w.length / 3);
        for (uint256 i; i < a.length; ++i) {
            a[i] = _unpackAsset(w[3 * i], w[3 * i + 1], w[3 * i + 2]);
        }
    }

    /// @dev The lending pool's aToken and variable debt token of basket asset `i`, from the words
    ///      setBasket appended after the basket (taken from the pool's reserve data; zero without a
    ///      pool or for an asset the pool does not list). One warm EXTCODECOPY of two words.
    function _poolTokens(address data, uint256 i) internal view returns (address aToken, address debtToken) {
        // the pairs start after 64 + 96n bytes, where 160n = the code's length - 64 (exact)
        uint256 at = BASKET_HEAD_BYTES + (data.code.length - BASKET_HEAD_BYTES) * 3 / 5 + 64 * i;
        uint256 w0;
        uint256 w1;
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            // scratch space (0x00-0x3f) holds the two words
            extcodecopy(data, 0, at, 64)
            w0 := mload(0)
            w1 := mload(32)
        }
        (aToken, debtToken) = (address(uint160(w0)), address(uint160(w1)));
    }

    /// @dev (token, target, bands, heartbeat, decimals, feed decimals), (feed), (min, max answer).
    ///      setBasket has checked every field: bounds in (0, 2^127), decimals <= 18.
    function _packAsset(Asset memory x) internal pure returns (uint256 w0, uint256 w1, uint256 w2) {
        w0 = uint256(uint160(x.token)) | uint256(x.targetBps) << 160 | uint256(x.innerBandBps) << 176
            | uint256(x.outerBandBps) << 192 | uint256(x.heartbeat) << 208 | uint256(x.decimals) << 240
            | uint256(x.feedDecimals) << 248;
        w1 = uint256(uint160(x.feed));
        w2 = uint256(uint128(x.minAnswer)) | uint256(uint128(x.maxAnswer)) << 128;
    }

    /// @dev The inverse of _packAsset.
    function _unpackAsset(uint256 w0, uint256 w1, uint256 w2) internal pure returns (Asset memory x) {
        x.token = address(uint160(w0));
        (x.targetBps, x.innerBandBps, x.outerBandBps) = (uint16(w0 >> 160), uint16(w0 >> 176), uint16(w0 >> 192));
        (x.heartbeat, x.decimals, x.feedDecimals) = (uint32(w0 >> 208), uint8(w0 >> 240), uint8(w0 >> 248));
        x.feed = address(uint160(w1));
        (x.minAnswer, x.maxAnswer) = (int128(uint128(w2)), int128(uint128(w2 >> 128)));
    }

    /// @dev Index of `token` in the basket (a scan of at most MAX_ASSETS in memory).
    function _indexOf(Asset[] memory a, address token) internal pure returns (uint256) {
        for (uint256 i; i < a.length; ++i) {
            if (a[i].token == token) return i;
        }
        revert NotBasketAsset(token);
    }

    /// @dev Latest answer of a feed; `readable` is false when the call fails or returns too little,
    ///      so views never revert on a broken feed.
    function _tryRead(address feed) internal view returns (int256 answer, uint256 updatedAt, bool readable) {
        (bool ok, bytes memory ret) = feed.staticcall(abi.encodeCall(IAggregatorV3.latestRoundData, ()));
        if (!ok || ret.length < 160) return (0, 0, false);
        (, answer,, updatedAt,) = abi.decode(ret, (uint256, int256, uint256, uint256, uint256));
        return (answer, updatedAt, true);
    }

    /// @dev Price of one asset, E18 USD. Strict: the feed must be readable, positive, fresh and in
    ///      bounds (else the specific error). Not strict: never reverts; `good` says whether it would
    ///      pass, and a bad answer is clamped into [minAnswer, maxAnswer] (unreadable: minAnswer).
    function _price(Asset memory x, bool strict) internal view returns (uint256 p, bool good) {
        if (strict) {
            try IAggregatorV3(x.feed).latestRoundData() returns (uint80, int256 a, uint256, uint256 u, uint80) {
                OracleLib.check(x.feed, a, u, x.heartbeat, x.minAnswer, x.maxAnswer);
                return (OracleLib.toE18(a, x.feedDecimals), true);
            } catch {
                revert FeedUnreadable(x.feed);
            }
        }
        (int256 answer, uint256 updatedAt, bool readable) = _tryRead(x.feed);
        good = readable && OracleLib.isGood(answer, updatedAt, x.heartbeat, x.minAnswer, x.maxAnswer);
        if (!readable || answer < x.minAnswer) answer = x.minAnswer;
        else if (answer > x.maxAnswer) answer = x.maxAnswer;
        p = OracleLib.toE18(answer, x.feedDecimals);
    }

    /// @dev Every basket price, E18 USD, each feed read once; `good` is false if any would fail.
    function _prices(Asset[] memory a, bool strict) internal view returns (uint256[] memory p, bool good) {
        p = new uint256[](a.length);
        good = true;
        for (uint256 i; i < a.length; ++i) {
            bool ok;
            (p[i], ok) = _price(a[i], strict);
            good = good && ok;
        }
    }

    /// @dev The vault's lending position as the pool holds it, per basket asset, raw: `lent` is the
    ///      aToken balance (supply with interest, less what liquidations took), `owed` the variable
    ///      debt token balance (debt with interest, less what liquidations repaid). Reads only the
    ///      assets supplyMask and FLAG_DEBT name, so a vault without a position reads nothing.
    function _lending(Asset[] memory a, Config memory cfg)
        internal
        view
        returns (uint256[] memory lent, uint256[] memory owed)
    {
        lent = new uint256[](a.length);
        owed = new uint256[](a.length);
        if (cfg.supplyMask == 0 && cfg.flags & FLAG_DEBT == 0) return (lent, owed);
        address debtAsset = cfg.flags & FLAG_DEBT != 0 ? _vs().collateral.debtAsset : address(0);
        for (uint256 i; i < a.length; ++i) {
            bool supplied = cfg.supplyMask & (1 << i) != 0;
            if (!supplied && a[i].token != debtAsset) continue;
            (address aToken, address debtToken) = _poolTokens(cfg.basket, i);
            if (supplied) lent[i] = IERC20(aToken).balanceOf(address(this));
            if (a[i].token == debtAsset) owed[i] = IERC20(debtToken).balanceOf(address(this));
        }
    }

    /// @dev NAV in E18 USD as (longs, debts) for the views: each asset's wallet + aToken balance, and
    ///      its debt token balance, valued at `p`, saturating at 2^256 - 1 (never reverts).
    function _longsAndDebts(Asset[] memory a, uint256[] memory p, Config memory cfg)
        internal
        view
        returns (uint256 longs, uint256 debts)
    {
        (uint256[] memory lent, uint256[] memory owed) = _lending(a, cfg);
        for (uint256 i; i < a.length; ++i) {
            uint256 unit = OracleLib.unit(a[i].decimals);
            uint256 long = Math.saturatingAdd(IERC20(a[i].token).balanceOf(address(this)), lent[i]);
            longs = Math.saturatingAdd(longs, _mulDivSat(long, p[i], unit, Math.Rounding.Floor));
            debts = Math.saturatingAdd(debts, _mulDivSat(owed[i], p[i], unit, Math.Rounding.Floor));
        }
    }

    /// @dev x * y / d rounded as asked, or 2^256 - 1 when the result does not fit (never reverts for d > 0).
    function _mulDivSat(uint256 x, uint256 y, uint256 d, Math.Rounding rounding) internal pure returns (uint256) {
        (uint256 high,) = Math.mul512(x, y);
        if (high >= d) return type(uint256).max;
        return Math.mulDiv(x, y, d, rounding);
    }

    /// @dev The loss counted in the rolling window at this block, and the window's bucket index.
    function _lossWindow(KeeperState memory s, uint24 lossPeriod) internal view returns (uint256 used, uint256 bucket) {
        bucket = block.timestamp / _bucketLength(lossPeriod);
        uint256 age = bucket - s.lossBucket; // buckets the ring has not seen yet are empty
        // the ring's bucket lossBucket - k is in the window while k + age <= 3
        for (uint256 k; k + age < LOSS_BUCKETS_PER_PERIOD + 1; ++k) {
            used += (s.lossRing >> (24 * ((s.lossBucket + 4 - k) & 3))) & 0xFFFFFF;
        }
    }

    /// @dev Seconds per loss bucket: lossPeriod / 3 rounded up, so 3 buckets cover a period and the
    ///      4 in the ring cover any window of lossPeriod seconds that ends now.
    function _bucketLength(uint24 lossPeriod) internal pure returns (uint256) {
        return Math.max(1, Math.ceilDiv(lossPeriod, LOSS_BUCKETS_PER_PERIOD));
    }

    /// @dev Transient slot of `token`'s (price E18 << 8 | decimals) for the TWAP check of this call.
    function _twapPriceSlot(address token) internal pure returns (TransientSlot.Bytes32Slot) {
        return TransientSlot.asBytes32(SlotDerivation.deriveMapping(_TWAP_PRICES_SLOT, token));
    }

    /// @dev LTV = debt / collateral in bps, rounded up (65535 for debt without collateral).
    function _ltvBps(uint256 coll, uint256 debt) internal pure returns (uint256) {
        if (debt == 0) return 0;
        if (coll == 0) return type(uint16).max;
        return Math.mulDiv(debt, BPS, coll, Math.Rounding.Ceil);
    }

    /// @dev ERC-4626 decimals offset.
    function _decimalsOffset() internal pure override returns (uint8) {
        return DECIMALS_OFFSET;
    }
}
