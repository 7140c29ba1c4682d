"""A JSON-RPC stand-in on 127.0.0.1 that proxies to anvil and injects faults on demand.

Modes (set `proxy.mode`): "ok" forwards; "down" closes every connection without answering;
"http:<code>" answers that HTTP status; "stale" serves an old head (eth_blockNumber and every
"latest" block tag pinned to `stale_block`, or to the real head minus `lag_blocks` when that is
set; receipts of later blocks are hidden); "send_timeout" forwards eth_sendRawTransaction
and then stalls past the client's timeout; "blackhole_send" accepts eth_sendRawTransaction
and never forwards it (a private relay that never includes). `fail_next` queues one-shot
modes that win over `mode`; `reject_sends[i]` answers the i-th send (1-based) with that
JSON-RPC error; `chain_id` (when set) is what eth_chainId answers. Every request is counted in
`seen`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from eth_utils import keccak

BLOCK_ARG = {
    "eth_call": 1,
    "eth_estimateGas": 1,
    "eth_getBalance": 1,
    "eth_getTransactionCount": 1,
    "eth_getCode": 1,
    "eth_getBlockByNumber": 0,
}


class RpcProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "ok"
        self.fail_next: list[str] = []
        self.reject_sends: dict[int, str] = {}
        self.stale_block = 0
        self.lag_blocks: int | None = None
        self.chain_id: int | None = None
        self.stall_s = 3.0
        self.seen: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.sends = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ behaviour

    def _take_mode(self) -> str:
        with self.lock:
            return self.fail_next.pop(0) if self.fail_next else self.mode

    def handle(self, body: Any) -> tuple[int, Any] | None:
        """(HTTP status, JSON body) or None to drop the connection."""
        mode = self._take_mode()
        methods = (
            [b.get("method", "?") for b in body]
            if isinstance(body, list)
            else [body.get("method", "?")]
        )
        with self.lock:
            self.seen.update(methods)
            self.outcomes[mode] += 1
        if mode == "down":
            return None
        if mode.startswith("http:"):
            return int(mode.split(":")[1]), {"error": "injected"}
        if isinstance(body, list):
            return 200, [self._one(b, mode) for b in body]
        return 200, self._one(body, mode)

    def _one(self, req: dict[str, Any], mode: str) -> Any:
        method = req.get("method")
        if method == "eth_chainId" and self.chain_id is not None:
            return {"jsonrpc": "2.0", "id": req.get("id"), "result": hex(self.chain_id)}
        if method == "eth_sendRawTransaction":
            return self._send(req, mode)
        if mode == "stale":
            return self._stale(req)
        return self._forward(req)

    def _stale(self, req: dict[str, Any]) -> Any:
        method = req.get("method")
        block, lag = self.stale_block, self.lag_blocks  # read once: another thread may reset
        if lag is not None:
            real = self._forward({**req, "method": "eth_blockNumber", "params": []})
            head = int(real["result"], 16)
            block = max(head - lag, 0)
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": req.get("id"), "result": hex(block)}
        resp = self._forward(_pin_latest(req, block))
        receipt = resp.get("result") if method == "eth_getTransactionReceipt" else None
        if isinstance(receipt, dict) and int(receipt["blockNumber"], 16) > block:
            resp = {**resp, "result": None}  # a lagging node has not seen that block
        return resp

    def _send(self, req: dict[str, Any], mode: str) -> Any:
        with self.lock:
            self.sends += 1
            n = self.sends
        if n in self.reject_sends:
            return {
                "jsonrpc": "2.0",
                "id": req.get("id"),
                "error": {"code": -32000, "message": self.reject_sends[n]},
            }
        if mode == "blackhole_send":
            tx_hash = "0x" + keccak(hexstr=req["params"][0]).hex()
            return {"jsonrpc": "2.0", "id": req.get("id"), "result": tx_hash}
        resp = self._forward(req)
        if mode == "send_timeout":
            time.sleep(self.stall_s)
        return resp

    def _forward(self, req: dict[str, Any]) -> Any:
        return requests.post(self.upstream, json=req, timeout=30).json()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                out = proxy.handle(body)
                if out is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                status, payload = out
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _pin_latest(req: dict[str, Any], block: int) -> dict[str, Any]:
    idx = BLOCK_ARG.get(str(req.get("method")))
    params = list(req.get("params") or [])
    if idx is None or len(params) <= idx or params[idx] not in ("latest", "pending"):
        if idx is not None and len(params) == idx:
            params.append(hex(block))
            return {**req, "params": params}
        return req
    params[idx] = hex(block)
    return {**req, "params": params}
