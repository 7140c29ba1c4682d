"""A JSON-RPC endpoint on 127.0.0.1 that answers each HTTP POST with a function of its body.

A thread per connection, HTTP/1.1 keep-alive (the client reuses its connection) and no Nagle
delay (the headers and the body go out as two writes; with Nagle the second waits for the
client's delayed ACK, about 40 ms a request).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handle = Callable[[bytes, str], bytes | None]  # (body, User-Agent) -> answer, None: HTTP 502


class LocalRpcServer:
    """Serves `handle` on a free port of 127.0.0.1 until `close()`."""

    def __init__(self, handle: Handle) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(handle))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalRpcServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler(handle: Handle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = handle(raw, self.headers.get("User-Agent", ""))
            try:
                if data is None:
                    self.send_error(502)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
