"""vault-keeper: a preventative-rebalancing keeper and the guarded vault it keeps in balance."""

__version__ = "0.1.0"
