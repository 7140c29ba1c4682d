// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IRebalancingVault} from "../interfaces/IRebalancingVault.sol";
import {IAavePool} from "../interfaces/IAavePool.sol";
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

    /// @dev Three slots per asset: (token, bands, heartbeat, decimals), (feed, feed decimals), bounds.
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

    /// @dev What the vault supplied to and borrowed from the lending pool, per asset, raw units.
    struct Position {
        uint128 supplied;
        uint128 borrowed;
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
    /// @custom:storage-location erc7201:vaultkeeper.storage.RebalancingVault
    struct VaultStorage {
        Asset[] assets;
        mapping(address token => uint256 indexPlusOne) slotOf;
        mapping(address token => Position) positions;
        mapping(address router => bool allowed) isRouter;
        Limits limits;
        CollateralParams collateral;
        uint256 epoch;
        uint256 lastRebalanceTs;
        uint256 lastCollateralTs;
        uint256 lossPeriodStartTs;
        uint256 periodLossE18;
        TwapGuard twap;
    }

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
        return _vs().epoch;
    }

    /// @notice Time of the last rebalance.
    function lastRebalanceTs() external view returns (uint256) {
        return _vs().lastRebalanceTs;
    }

    /// @notice Time of the last adjustCollateral.
    function lastCollateralTs() external view returns (uint256) {
        return _vs().lastCollateralTs;
    }

    /// @notice Start of the current loss-accounting period.
    function lossPeriodStartTs() external view returns (uint256) {
        return _vs().lossPeriodStartTs;
    }

    /// @notice Loss against the oracle accumulated in the current period, E18 USD.
    function periodLossE18() external view returns (uint256) {
        return _vs().periodLossE18;
    }

    // ─────────────────────────── shared helpers ───────────────────────────

    function _indexOf(address token) internal view returns (uint256) {
        uint256 s = _vs().slotOf[token];
        if (s == 0) revert NotBasketAsset(token);
        return s - 1;
    }

    /// @dev Every basket price, E18 USD, each feed checked (fresh, positive, in bounds).
    function _prices(Asset[] memory a) internal view returns (uint256[] memory p) {
        p = new uint256[](a.length);
        for (uint256 i; i < a.length; ++i) {
            p[i] = OracleLib.priceE18Checked(a[i].feed, a[i].feedDecimals, a[i].heartbeat, a[i].minAnswer, a[i].maxAnswer);
        }
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
