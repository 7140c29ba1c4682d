"""`keeper replay`: a window of real prices and gas, run through the live pipeline and through the
backtester on the same inputs, hour by hour.

- `window`: the hours to replay, read once from a price file and gas files (the shipped June 2022
  slice by default) for both sides;
- `live`: a local anvil with the local market and a vault; each hour the market moves to the
  hour's prices, the chain's base fee to the hour's gas, and the keeper ticks once (read, decide,
  plan, simulate, send), driven directly rather than by the scheduler's clock;
- `twin`: the backtester on the same window, with a vault spec that mirrors the live vault;
- `compare`: the two decisions of every hour, the reason for every disagreement, the summary;
- `output` and `plot`: one line per hour, the transactions, the summary, and a PNG.

`run_replay` in `keeper.replay.run` ties them together; `keeper demo` is a short replay.
"""
