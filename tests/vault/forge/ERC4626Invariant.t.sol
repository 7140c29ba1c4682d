// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IAavePool} from "contracts/interfaces/IAavePool.sol";
import {IRebalancingVault} from "contracts/interfaces/IRebalancingVault.sol";
import {RebalancingVault} from "contracts/RebalancingVault.sol";
import {MockERC20} from "contracts/mocks/MockERC20.sol";
import {MockAggregator} from "contracts/mocks/MockAggregator.sol";

/// @dev The forge cheat codes this test uses (forge-std's Vm, declared here: no git dependency).
interface Vm {
    function prank(address sender) external;
    function warp(uint256 timestamp) external;
}

/// @notice Drives the vault's whole ERC-4626 surface for the invariant test: deposit, mint,
///         withdraw and redeem by three users (sometimes exactly at max*, sometimes past it), gains
///         (donations, price rises), losses (price falls), stale feeds (time passing), pauses and a
///         deposit cap. Every action checks its own property; a broken one is recorded in
///         `failure`, which the invariant reports (fail_on_revert is off, so a handler revert
///         would be ignored rather than reported).
contract VaultHandler {
    Vm internal constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant USERS = 3;
    uint256 internal constant USDC_UNIT = 1e6;

    RebalancingVault public vault;
    MockERC20 public usdc;
    MockERC20[2] public risky; // 18 and 8 decimals, like WETH and WBTC
    MockAggregator[3] public feeds; // USDC, risky[0], risky[1]
    int256[3] internal basePrice;
    address[USERS] public users;

    string public failure;
    mapping(bytes32 action => uint256 count) public calls;

    constructor() {
        usdc = new MockERC20("USD Coin", "USDC", 6);
        risky[0] = new MockERC20("Wrapped Ether", "WETH", 18);
        risky[1] = new MockERC20("Wrapped Bitcoin", "WBTC", 8);
        basePrice = [int256(1e8), int256(2_300e8), int256(42_000e8)];
        for (uint256 i; i < 3; ++i) {
            feeds[i] = new MockAggregator(8, "feed", basePrice[i]);
        }
        vault = new RebalancingVault(address(this), usdc, IAavePool(address(0)), "Vault", "v");
        IRebalancingVault.AssetConfig[] memory basket = new IRebalancingVault.AssetConfig[](3);
        address[3] memory tokens = [address(usdc), address(risky[0]), address(risky[1])];
        uint16[3] memory targets = [uint16(5_000), 3_000, 2_000];
        uint32[3] memory heartbeats = [uint32(86_400), 3_600, 3_600];
        for (uint256 i; i < 3; ++i) {
            basket[i] = IRebalancingVault.AssetConfig(
                tokens[i], address(feeds[i]), targets[i], 200, 500, heartbeats[i], basePrice[i] / 10, basePrice[i] * 10
            );
        }
        vault.setBasket(basket);
        vault.grantRole(vault.GUARDIAN_ROLE(), address(this));
        for (uint256 u; u < USERS; ++u) {
            users[u] = address(uint160(0xA11CE + u));
            usdc.mint(users[u], 1e15 * USDC_UNIT);
            VM.prank(users[u]);
            usdc.approve(address(vault), type(uint256).max);
        }
    }

    // ─────────────────────────── users ───────────────────────────

    function deposit(uint256 who, uint256 amount, bool atMax) external {
        address u = users[who % USERS];
        uint256 max = vault.maxDeposit(u);
        uint256 cap = _min(max, usdc.balanceOf(u)); // maxDeposit does not know the user's wallet
        uint256 assets = atMax ? cap : amount % (cap + 2);
        _count("deposit", assets > max);
        if (assets > max) return _expectRevert(abi.encodeCall(vault.deposit, (assets, u)), u, "deposit over max");
        if (assets == 0 || assets > cap) return; // past the user's wallet: not the vault's refusal
        uint256 preview = vault.previewDeposit(assets);
        VM.prank(u);
        try vault.deposit(assets, u) returns (uint256 shares) {
            if (shares != preview) _fail("deposit != previewDeposit");
            if (vault.previewRedeem(shares) > assets) _fail("deposit then redeem pays more than deposited");
        } catch {
            _fail("deposit at or under maxDeposit reverted");
        }
    }

    function mint(uint256 who, uint256 amount, bool atMax) external {
        address u = users[who % USERS];
        uint256 max = vault.maxMint(u);
        uint256 cap = _min(max, vault.convertToShares(usdc.balanceOf(u)) / 2);
        uint256 shares = atMax ? cap : amount % (cap + 2);
        _count("mint", shares > max);
        if (shares > max) return _expectRevert(abi.encodeCall(vault.mint, (shares, u)), u, "mint over max");
        if (shares == 0 || shares > cap) return; // past the user's wallet: not the vault's refusal
        uint256 preview = vault.previewMint(shares);
        VM.prank(u);
        try vault.mint(shares, u) returns (uint256 assets) {
            if (assets != preview) _fail("mint != previewMint");
            if (vault.previewRedeem(shares) > assets) _fail("mint then redeem pays more than paid");
        } catch {
            _fail("mint at or under maxMint reverted");
        }
    }

    function withdraw(uint256 who, uint256 amount, bool atMax) external {
        address u = users[who % USERS];
        uint256 max = vault.maxWithdraw(u);
        uint256 assets = atMax ? max : amount % (max + 2);
        _count("withdraw", assets > max);
        if (assets > max) {
            return _expectRevert(abi.encodeCall(vault.withdraw, (assets, u, u)), u, "withdraw over max");
        }
        if (assets == 0) return;
        uint256 preview = vault.previewWithdraw(assets);
        VM.prank(u);
        try vault.withdraw(assets, u, u) returns (uint256 shares) {
            if (shares != preview) _fail("withdraw != previewWithdraw");
        } catch {
            _fail("withdraw at or under maxWithdraw reverted");
        }
    }

    function redeem(uint256 who, uint256 amount, bool atMax) external {
        address u = users[who % USERS];
        uint256 max = vault.maxRedeem(u);
        uint256 shares = atMax ? max : amount % (max + 2);
        _count("redeem", shares > max);
        if (shares > max) return _expectRevert(abi.encodeCall(vault.redeem, (shares, u, u)), u, "redeem over max");
        if (shares == 0) return;
        uint256 preview = vault.previewRedeem(shares);
        VM.prank(u);
        try vault.redeem(shares, u, u) returns (uint256 assets) {
            if (assets != preview) _fail("redeem != previewRedeem");
        } catch {
            _fail("redeem at or under maxRedeem reverted");
        }
    }

    /// @notice No free round trip: deposit then redeem everything minted never returns more.
    function roundTrip(uint256 who, uint256 amount) external {
        address u = users[who % USERS];
        uint256 max = vault.maxDeposit(u);
        uint256 assets = amount % (_min(max, _min(usdc.balanceOf(u), 1e9 * USDC_UNIT)) + 1);
        if (assets == 0) return;
        _count("roundTrip", false);
        uint256 before = usdc.balanceOf(u);
        VM.prank(u);
        try vault.deposit(assets, u) returns (uint256 shares) {
            uint256 out = _min(shares, vault.maxRedeem(u));
            VM.prank(u);
            try vault.redeem(out, u, u) {
                if (usdc.balanceOf(u) > before) _fail("a deposit-redeem round trip made money");
            } catch {
                _fail("redeem at or under maxRedeem reverted");
            }
        } catch {
            _fail("deposit at or under maxDeposit reverted");
        }
    }

    // ─────────────────────────── market ───────────────────────────

    /// @notice A fresh feed answer for asset i, within its bounds (a gain or a loss).
    function movePrice(uint256 i, int256 bps) external {
        i %= 3;
        bps = bps % 3_000; // -30% .. +30% of the current answer
        (, int256 answer,,,) = feeds[i].latestRoundData();
        int256 next = answer * (10_000 + bps) / 10_000;
        if (next < basePrice[i] / 10) next = basePrice[i] / 10;
        if (next > basePrice[i] * 10) next = basePrice[i] * 10;
        _count("movePrice", bps < 0);
        feeds[i].setAnswer(next);
    }

    /// @notice Someone sends the vault a basket asset (a gain for every holder).
    function donate(uint256 i, uint256 amount) external {
        i %= 3;
        _count("donate", false);
        if (i == 0) usdc.mint(address(vault), amount % (1e6 * USDC_UNIT));
        else risky[i - 1].mint(address(vault), amount % (i == 1 ? 100e18 : 5e8));
    }

    /// @notice Time passes; the feeds go stale unless refreshed.
    function warp(uint256 seconds_, bool refresh) external {
        VM.warp(block.timestamp + 1 + seconds_ % 7_200);
        _count("warp", !refresh);
        if (!refresh) return;
        for (uint256 i; i < 3; ++i) {
            (, int256 answer,,,) = feeds[i].latestRoundData();
            feeds[i].setAnswer(answer);
        }
    }

    function togglePause(bool) external {
        _count("togglePause", vault.paused());
        if (vault.paused()) vault.unpause();
        else vault.pause();
    }

    /// @notice A deposit cap somewhere around the current total assets, or none.
    function setDepositCap(uint256 capUsdc, bool none) external {
        _count("setDepositCap", none);
        IRebalancingVault.Limits memory lim = vault.limits();
        lim.depositCapRaw = none ? type(uint256).max : (capUsdc % 1e8) * USDC_UNIT;
        vault.setLimits(lim);
    }

    // ─────────────────────────── views ───────────────────────────

    /// @notice Every view in whatever state the vault is in: max*, totalAssets and convertTo* never
    ///         revert (a revert here is recorded); previews round for the vault; conversions are
    ///         monotone.
    function checkViews(uint256 x) external {
        _count("checkViews", false);
        try this.views(x % 1e15) {} catch Error(string memory why) {
            _fail(why);
        } catch {
            _fail("a view that must not revert reverted");
        }
    }

    /// @dev The checks of checkViews (external, so a revert anywhere is caught there).
    function views(uint256 x) external view {
        for (uint256 u; u < USERS; ++u) {
            address who = users[u];
            vault.maxDeposit(who);
            vault.maxMint(who);
            require(vault.maxWithdraw(who) <= usdc.balanceOf(address(vault)), "maxWithdraw above idle");
            require(vault.maxRedeem(who) <= vault.balanceOf(who), "maxRedeem above balance");
        }
        vault.totalAssets();
        (uint256 s0, uint256 a0) = (vault.convertToShares(x), vault.convertToAssets(x));
        (uint256 s1, uint256 a1) = (vault.convertToShares(x + 1e6), vault.convertToAssets(x + 1e6));
        require(s1 >= s0 && a1 >= a0, "conversion not monotone");
        try vault.previewDeposit(x) returns (uint256 s) {
            require(vault.previewRedeem(s) <= x, "redeeming what a deposit mints pays more");
            require(vault.previewMint(s) >= vault.previewRedeem(s), "mint cheaper than redeem pays");
            require(vault.previewWithdraw(x) >= s, "withdraw burns less than deposit mints");
        } catch {
            return; // an unpriceable vault: the previews revert as the actions would
        }
    }

    // ─────────────────────────── helpers ───────────────────────────

    function userCount() external pure returns (uint256) {
        return USERS;
    }

    function _expectRevert(bytes memory data, address u, string memory what) internal {
        VM.prank(u);
        (bool ok,) = address(vault).call(data);
        if (ok) _fail(string.concat(what, " succeeded"));
    }

    function _fail(string memory why) internal {
        if (bytes(failure).length == 0) failure = why;
    }

    function _count(string memory action, bool variant) internal {
        ++calls[keccak256(abi.encode(action, variant))];
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }
}

/// @notice Invariants of the vault's ERC-4626 surface (run 500 x 30 by foundry.toml):
///         - maxDeposit, maxMint, maxWithdraw, maxRedeem, totalAssets, convertTo* never revert;
///         - a call at max* succeeds and one past it reverts; preview* equals the action;
///         - previews round in the vault's favour and no round trip makes money;
///         - convertToShares and convertToAssets are monotone;
///         - totalSupply is the sum of the holders' balances.
contract ERC4626InvariantTest {
    VaultHandler internal handler;

    function setUp() public {
        handler = new VaultHandler();
    }

    /// @dev forge's invariant runner calls only the handler.
    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    /// @dev One cheap invariant (forge runs each invariant_* as its own campaign and calls it after
    ///      every handler call); the view checks are the handler's checkViews action.
    function invariant_erc4626() public view {
        string memory why = handler.failure();
        require(bytes(why).length == 0, why);
        RebalancingVault v = handler.vault();
        uint256 sum;
        for (uint256 u; u < handler.userCount(); ++u) {
            sum += v.balanceOf(handler.users(u));
        }
        require(sum == v.totalSupply(), "totalSupply != sum of balances");
    }
}
