"""A local webhook receiver for tests: answers each POST from a script of status codes (or
hangs on one until released), and verifies every signature with the `standardwebhooks`
package, written apart from sluice's signer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

HANG = -1  # in a script: hold the request open until release()


@dataclass
class Received:
    """One POST as it arrived."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 in a thread; `script` is the answer to each POST in turn
    (200 once it runs out)."""

    secret: str
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                with receiver.arrived:
                    n = len(receiver.received)
                    code = receiver.script[n] if n < len(receiver.script) else 200
                    receiver.received.append(Received(headers, body, verified, code))
                    receiver.arrived.notify_all()
                if code == HANG:
                    receiver.released.wait(60)
                    return  # the connection closes without an answer
                self.send_response(code)
                if 300 <= code < 400:  # a followed redirect would POST here again
                    self.send_header("location", f"{receiver.url}?redirected=1")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sluice"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 60) -> list[Received]:
        """Block until n POSTs have arrived; all of them so far."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= n, timeout):
                raise TimeoutError(f"{len(self.received)} of {n} webhook POSTs arrived")
            return list(self.received)

    def release(self) -> None:
        """Let go of a hung request."""
        self.released.set()

    def close(self) -> None:
        """Stop serving."""
        self.release()
        self.server.shutdown()
        self.server.server_close()
