"""A small stdlib HTTP server that plays an OpenAI-compatible judge for tests, on 127.0.0.1, always stopped.

Configurable the ways real servers misbehave: failures before it answers, a key it insists on, the models it
lists (and their entries), what it replies (a verdict, null, blank, megabytes, babble), error bodies that echo
the request's headers, and a path prefix (`/v1`) outside which it answers 404.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Endpoint:
    status: int = 429
    fail_first: int = 0  # chat requests answered `status` before it answers
    key: str | None = None
    models: list[dict[str, Any]] = field(default_factory=lambda: [{"id": "judge", "object": "model",
                                                                    "owned_by": "stub"}])  # fmt: skip
    reply: Callable[[dict[str, Any]], Any] = lambda body: "理由。\n[[A]]"  # None → "content": null
    echo_headers_on_error: bool = False  # a proxy that copies the request into its error page
    prefix: str = "/v1"
    chat_requests: int = 0
    bodies: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def handler_for(endpoint: Endpoint):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "10")  # keep the client's backoff short in the test
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            if endpoint.echo_headers_on_error:
                message += " request headers: " + "; ".join(f"{k}: {v}" for k, v in self.headers.items())
            self._send(status, {"error": {"message": message}})

        def _routed(self) -> bool:
            if not self.path.startswith(endpoint.prefix + "/"):
                self._send(404, {"detail": "Not Found"})
                return False
            if endpoint.key and self.headers.get("Authorization") != f"Bearer {endpoint.key}":
                self._error(401, "bad key")
                return False
            return True

        def do_GET(self):
            if self._routed():
                self._send(200, {"object": "list", "data": endpoint.models})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self._routed():
                return
            with endpoint.lock:
                endpoint.chat_requests += 1
                endpoint.bodies.append(body)
                failing = endpoint.chat_requests <= endpoint.fail_first
            if failing:
                self._error(endpoint.status, "overloaded")
                return
            content = endpoint.reply(body)
            self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": content}}]})  # fmt: skip

    return Handler


class Stubs:
    """Started stub servers, each `start(endpoint)` → its base URL; `close()` stops them all."""

    def __init__(self) -> None:
        self.servers: list[ThreadingHTTPServer] = []

    def start(self, endpoint: Endpoint, path: str = "/v1") -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(endpoint))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}{path}"

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
