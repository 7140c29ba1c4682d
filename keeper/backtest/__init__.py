"""Backtester: replay a vault hour by hour with the live decide(), no chain."""
