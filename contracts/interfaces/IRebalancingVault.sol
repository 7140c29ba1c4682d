// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IRebalancingVault
/// @notice Structs, events and custom errors of the multi-asset rebalancing vault, declared once here.
///         The keeper codes against this ABI. Units are in the names: `_raw`/`Raw` (a token's own
///         decimals), `E18` (USD with 18 decimals), `Bps` (1/10,000), `Base` (the lending pool's base
///         currency, USD with 8 decimals), `Ts` (unix seconds).
interface IRebalancingVault {
    // ───────────────────────────── types ─────────────────────────────

    /// @notice What adjustCollateral does with the lending pool.
    enum CollateralAction {
        Supply,
        Withdraw,
        Borrow,
        Repay
    }

    /// @notice One swap of a rebalance. `path` empty: exactInputSingle(tokenIn, tokenOut, fee);
    ///         non-empty: exactInput(path), whose tokens must all be basket assets, the first being
    ///         tokenIn and the last tokenOut. The vault sets amountOutMinimum itself from the oracle.
    struct SwapLeg {
        address router;
        address tokenIn;
        address tokenOut;
        uint24 fee;
        uint256 amountIn;
        bytes path;
    }

    /// @notice One basket asset as the admin configures it.
    struct AssetConfig {
        address token;
        address feed;
        uint16 targetBps;
        uint16 innerBandBps;
        uint16 outerBandBps;
        uint32 heartbeat;
        int256 minAnswer;
        int256 maxAnswer;
    }

    /// @notice Trading and accounting limits (admin, within sane bounds).
    struct Limits {
        uint256 maxTradeE18; // notional cap per rebalance / adjustCollateral call
        uint256 ripcordMaxTradeE18; // tighter notional cap per ripcord call (<= maxTradeE18)
        uint32 cooldown; // seconds between two rebalances (and between two adjustCollateral calls)
        uint16 maxSlippageBps; // oracle floor: minOut = oracleOut * (1 - maxSlippageBps)
        uint16 lossCapBps; // loss against the oracle in any window of lossPeriod seconds, bps of NAV
        uint32 lossPeriod; // seconds, the rolling window of the loss cap
        uint256 depositCapRaw; // totalAssets cap for deposits, in the deposit asset's units
    }

    /// @notice The collateral position's targets (admin, within sane bounds).
    struct CollateralParams {
        address debtAsset; // the only asset the vault may borrow (a basket asset)
        uint16 targetLtvBps;
        uint16 minLtvBps; // lower edge of the band
        uint16 maxLtvBps; // upper edge: no keeper action may leave the LTV above it
        uint16 ripcordLtvBps; // at or above it, ripcord opens (> maxLtvBps)
        uint256 minHealthFactor; // 1e18 = 1.0; no keeper action may leave the HF below it
    }

    /// @notice The oracle-vs-pool TWAP guard of rebalance legs (admin). `window` 0 turns it off.
    ///         On, every hop of every rebalance leg must trade in a Uniswap v3 pool of `factory`
    ///         whose TWAP over `window` seconds is within `maxDeviationBps` of the oracles' ratio.
    struct TwapGuard {
        address factory; // the Uniswap v3 factory of the legs' pools
        uint32 window; // TWAP window, seconds
        uint16 maxDeviationBps; // largest oracle vs TWAP difference per hop
    }

    // AssetView and KeeperView only travel ABI-encoded (every field a full word), never in storage,
    // and the keeper decodes them by field order, so they are not reordered for packing.
    /// @notice One asset in keeperView. A bad feed gives valueE18 = weightBps = 0 and feedOk = false,
    ///         with the raw answer and updatedAt still returned.
    struct AssetView { // solhint-disable-line gas-struct-packing
        address token;
        uint8 decimals;
        uint256 balance; // net exposure held + suppliedRaw - borrowedRaw, clamped at 0 (see netValueE18)
        uint256 valueE18; // net value clamped at 0
        uint16 weightBps; // net weight of NAV, clamped to [0, 65535]
        uint16 targetBps;
        uint16 innerBandBps;
        uint16 outerBandBps;
        address feed;
        uint8 feedDecimals;
        int256 answer;
        uint256 updatedAt;
        uint32 heartbeat;
        int256 minAnswer;
        int256 maxAnswer;
        // added after the first draft:
        uint256 heldRaw; // in the vault's wallet
        uint256 suppliedRaw; // the pool's aToken balance: supply with interest, net of liquidations
        uint256 borrowedRaw; // the pool's variable debt token balance: debt with interest
        int256 netValueE18; // signed net value (negative when more is borrowed than held+supplied)
        bool feedOk; // fresh, positive and inside [minAnswer, maxAnswer]
    }

    // not reordered for packing either: see AssetView
    /// @notice Everything the keeper needs about the vault, in one call that never reverts on a bad feed.
    struct KeeperView { // solhint-disable-line gas-struct-packing
        AssetView[] assets;
        uint256 navE18;
        uint256 collateralBase;
        uint256 debtBase;
        uint256 healthFactor;
        uint16 ltvBps;
        uint16 liquidationThresholdBps;
        uint16 targetLtvBps;
        uint16 minLtvBps;
        uint16 maxLtvBps;
        uint16 ripcordLtvBps;
        uint256 epoch;
        uint256 lastRebalanceTs;
        uint32 cooldown;
        uint256 maxTradeE18;
        uint16 maxSlippageBps;
        uint16 lossCapBps;
        uint32 lossPeriod;
        uint256 lossInWindowE8; // loss counted in the rolling window now, 1e-8 of NAV (1e8 = all)
        bool paused;
        uint256 blockTimestamp;
        // added after the first draft:
        uint256 lastCollateralTs;
        uint256 ripcordMaxTradeE18;
        uint256 minHealthFactor;
        address debtAsset;
        uint256 lossWindowStartTs; // start of the oldest loss bucket still counted
        uint256 totalSupply;
        uint256 depositCapRaw;
        bool feedsOk; // every feed is good, so navE18 is complete and keeper actions can pass the oracle guard
    }

    // ───────────────────────────── events ─────────────────────────────

    /// @notice The basket was replaced (one AssetConfigured per asset precedes it, in the same call).
    /// @param assetCount Number of assets in the new basket.
    event BasketSet(uint256 assetCount);
    /// @notice One basket asset was configured.
    /// @param token The asset.
    /// @param feed Its price feed.
    /// @param targetBps Target weight, bps.
    /// @param innerBandBps Deviation from target past which the vault allows a rebalance, bps.
    /// @param outerBandBps Deviation past which the keeper rebalances regardless of cost, bps.
    /// @param heartbeat Longest accepted feed age, seconds.
    /// @param minAnswer Lowest accepted feed answer.
    /// @param maxAnswer Highest accepted feed answer.
    event AssetConfigured(
        address indexed token,
        address indexed feed,
        uint16 targetBps,
        uint16 innerBandBps,
        uint16 outerBandBps,
        uint32 heartbeat,
        int256 minAnswer,
        int256 maxAnswer
    );
    /// @notice A router was allowed or disallowed.
    /// @param router The router.
    /// @param allowed Whether the keeper may use it.
    event RouterSet(address indexed router, bool allowed);
    /// @notice The limits were changed.
    /// @param limits The new limits.
    event LimitsSet(Limits limits);
    /// @notice The collateral parameters were changed.
    /// @param params The new parameters.
    event CollateralParamsSet(CollateralParams params);
    /// @notice The oracle-vs-TWAP guard was changed (window 0: off).
    /// @param guard The new guard.
    event TwapGuardSet(TwapGuard guard);
    /// @notice One swap leg executed.
    /// @param epoch The epoch of the rebalance or ripcord.
    /// @param router The router used.
    /// @param tokenIn Token sold.
    /// @param tokenOut Token bought.
    /// @param amountIn Raw amount sold.
    /// @param amountOut Raw amount received (balance difference).
    /// @param minOut The oracle floor the leg had to clear.
    event Swapped(
        uint256 indexed epoch,
        address indexed router,
        address tokenIn,
        address tokenOut,
        uint256 amountIn,
        uint256 amountOut,
        uint256 minOut
    );
    /// @notice A rebalance finished.
    /// @param epoch The new epoch.
    /// @param legs Number of swap legs.
    /// @param navBeforeE18 NAV before, E18 USD.
    /// @param navAfterE18 NAV after, E18 USD.
    /// @param distanceBeforeBps Sum of |weight - target| before, bps.
    /// @param distanceAfterBps Sum of |weight - target| after, bps.
    /// @param lossInWindowE8 Loss counted in the rolling window after this one, 1e-8 of NAV.
    event Rebalanced(
        uint256 indexed epoch,
        uint256 legs,
        uint256 navBeforeE18,
        uint256 navAfterE18,
        uint256 distanceBeforeBps,
        uint256 distanceAfterBps,
        uint256 lossInWindowE8
    );
    /// @notice A collateral action finished (amount is what the pool actually moved).
    /// @param epoch The new epoch.
    /// @param action Supply, Withdraw, Borrow or Repay.
    /// @param asset The asset moved.
    /// @param amount Raw amount the pool moved.
    /// @param ltvBps LTV afterwards, bps.
    /// @param healthFactor Health factor afterwards, 1e18 = 1.0.
    event CollateralAdjusted(
        uint256 indexed epoch,
        CollateralAction action,
        address indexed asset,
        uint256 amount,
        uint256 ltvBps,
        uint256 healthFactor
    );
    /// @notice The emergency deleverage ran.
    /// @param epoch The new epoch.
    /// @param ltvBeforeBps LTV before, bps.
    /// @param ltvAfterBps LTV after, bps.
    /// @param repaidRaw Debt asset repaid, raw.
    event RipcordPulled(uint256 indexed epoch, uint256 ltvBeforeBps, uint256 ltvAfterBps, uint256 repaidRaw);

    // ───────────────────────────── errors ─────────────────────────────

    // oracle
    error StaleFeed(address feed, uint256 updatedAt, uint256 heartbeat);
    error FeedFromFuture(address feed, uint256 updatedAt, uint256 blockTimestamp);
    error BadAnswer(address feed, int256 answer);
    error AnswerOutOfBounds(address feed, int256 answer, int256 minAnswer, int256 maxAnswer);
    error FeedUnreadable(address feed);
    // keeper tickets
    error BadEpoch(uint256 given, uint256 current);
    error CooldownActive(uint256 readyAt);
    error DeadlinePassed(uint256 deadline);
    // swaps
    error RouterNotAllowed(address router);
    error NotBasketAsset(address token);
    error SameToken(address token);
    error BadPath(uint256 pathLength);
    error PathMismatch(address pathTokenIn, address pathTokenOut);
    error InsufficientBalance(address token, uint256 balanceRaw, uint256 neededRaw);
    error EmptyPlan();
    error ZeroAmount();
    error SlippageExceeded(uint256 amountOut, uint256 minOut);
    error TwapUnavailable(address pool);
    error TwapDeviationTooHigh(address pool, uint256 deviationBps, uint256 maxDeviationBps);
    error TradeTooLarge(uint256 notionalE18, uint256 capE18);
    error LossCapExceeded(uint256 lossInWindowE8, uint256 capE8);
    error NotCloserToTarget(uint256 beforeBps, uint256 afterBps);
    error NothingToRebalance(uint256 maxExcessBps);
    error NavNotPositive(int256 navE18);
    // collateral
    error LendingDisabled();
    error HealthTooLow(uint256 healthFactor, uint256 minHealthFactor);
    error LtvTooHigh(uint256 ltvBps, uint256 maxLtvBps);
    error LtvNotReduced(uint256 beforeBps, uint256 afterBps);
    error RipcordNotArmed(uint256 ltvBps, uint256 ripcordLtvBps);
    error NotDebtAsset(address token, address debtAsset);
    error ReserveNotListed(address token);
    error DebtOutstanding(address debtAsset);
    // parameters
    error WeightsSumInvalid(uint256 sumBps, uint256 expectedBps);
    error DuplicateAsset(address token);
    error BandsInvalid(address token, uint16 innerBandBps, uint16 outerBandBps);
    error HeartbeatInvalid(address token, uint32 heartbeat, uint32 maxHeartbeat);
    error FeedBoundsInvalid(address feed, int256 minAnswer, int256 maxAnswer);
    error DecimalsInvalid(address tokenOrFeed, uint8 decimals);
    error BasketSizeInvalid(uint256 count, uint256 maxCount);
    error DepositAssetMissing(address asset);
    error AssetStillHeld(address token, uint256 heldRaw, bool inLendingPool);
    error SlippageTooHigh(uint16 maxSlippageBps, uint16 saneMaxBps);
    error ParamOutOfRange(bytes32 name, uint256 value, uint256 min, uint256 max);
    error ZeroAddress();
}
