"""JSON-RPC batches in bounded chunks, sent in parallel.

A tick's simulation asks the node for many things at once (a simulation, or two access lists,
per plan; the fork's accounts and slots). One batch per stage keeps the round trips fixed, but
one huge request can outlast the provider's timeout or its batch limit. Chunks of a bounded size,
up to PARALLEL in flight, keep both: one round trip in sequence for up to PARALLEL chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from web3 import Web3
from web3.exceptions import Web3Exception
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint

from keeper.errors import KeeperError

PARALLEL = 8  # chunks in flight at once
Request = tuple[RPCEndpoint, list[Any]]
FAILURES = (KeeperError, Web3Exception, OSError, ValueError)


class ChunkFailed(Exception):
    """Stands for each answer of a chunk the node did not answer (the cause is chained)."""


def send(w3: Web3, reqs: Sequence[Request], chunk: int) -> list[Any]:
    """The answers to `reqs`, in order. The answers of a chunk that failed are ChunkFailed."""
    chunks = [list(reqs[i : i + chunk]) for i in range(0, len(reqs), chunk)]
    if len(chunks) <= 1:
        return _one(w3, chunks[0]) if chunks else []
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(chunks))) as pool:
        return [a for got in pool.map(lambda c: _one(w3, c), chunks) for a in got]


def _one(w3: Web3, reqs: list[Request]) -> list[Any]:
    try:
        got = cast(JSONBaseProvider, w3.provider).make_batch_request(reqs)
    except FAILURES as err:
        failed = ChunkFailed(_why(err))
        failed.__cause__ = err
        return [failed] * len(reqs)
    if not isinstance(got, list) or len(got) != len(reqs):
        failed = ChunkFailed(f"the node answered a batch of {len(reqs)} with {str(got)[:160]}")
        return [failed] * len(reqs)
    return got


def _why(err: BaseException) -> str:
    return str(err) if isinstance(err, KeeperError) else f"{type(err).__name__}: {err}"
