"""Rebalancing policies: calendar, threshold, band and preventative, behind one `decide()`."""

from keeper.policy.base import Policy, make_policy

__all__ = ["Policy", "make_policy"]
