"""A fault fake for client tests: a small HTTP proxy in front of a real API that answers
chosen requests with an error (503 with Retry-After, say) or drops their connection, and
forwards everything else. It records every request it saw, so a test can prove its fault
landed and how long the client waited before trying again."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Fault:
    """What to answer instead of forwarding: a status with headers and an error body, or
    (drop=True) nothing at all, the connection closed."""

    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    code: str = "service_unavailable"
    drop: bool = False


@dataclass
class Seen:
    """A request the proxy took: method, path, when, and what it answered (0: dropped)."""

    method: str
    path: str
    at: float
    status: int


class FaultProxy:
    """Forwards to `upstream`; faults planned per (method, path prefix) are used in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        self.plans: list[tuple[str, str, list[Fault]]] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where clients should send their requests."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def plan(self, method: str, path_prefix: str, *faults: Fault) -> None:
        """Answer the next requests of this method under this path with these faults."""
        with self.lock:
            self.plans.append((method, path_prefix, list(faults)))

    def requests(self, method: str, path_prefix: str) -> list[Seen]:
        """The requests seen of a method under a path, in order."""
        with self.lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]

    def _next_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for want_method, prefix, faults in self.plans:
                if want_method == method and path.startswith(prefix) and faults:
                    return faults.pop(0)
        return None

    def _record(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.seen.append(Seen(method, path, time.monotonic(), status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(parts)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                fault = proxy._next_fault(self.command, self.path)
                if fault is not None and fault.drop:
                    proxy._record(self.command, self.path, 0)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None:
                    proxy._record(self.command, self.path, fault.status)
                    error = {"message": "injected fault", "type": "server_error"}
                    envelope = json.dumps({"error": {**error, "param": None, "code": fault.code}})
                    headers = {"Content-Type": "application/json", **fault.headers}
                    self._answer(fault.status, headers, envelope.encode())
                    return
                forwarded = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream = proxy.upstream.request(
                    self.command, self.path, content=body, headers=forwarded
                )
                proxy._record(self.command, self.path, upstream.status_code)
                headers = {
                    k: v
                    for k, v in upstream.headers.items()
                    if k.lower() not in HOP_HEADERS and k.lower() != "content-encoding"
                }
                self._answer(upstream.status_code, headers, upstream.content)

            do_GET = do_POST = do_DELETE = _handle

        return Handler

    def close(self) -> None:
        """Stop serving and close the upstream connections."""
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()
