"""Webhook delivery from the outbox: the housekeeper claims due events under a lease and
hands each to a small pool of threads, which POST it signed (Standard Webhooks), to an
address checked again just before connecting, without following redirects, and record the
attempt. A 2xx answer delivers the event; anything else is tried again later with the same
webhook-id, until the retry window closes."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from core.config import Settings
from core.db import read_session, write_session
from core.errors import InvalidInput
from core.store.webhook_outbox import (
    DELIVERED,
    DeliveryClaim,
    claim_deliveries,
    has_due_deliveries,
    record_attempt,
)
from core.webhooks.events import retry_at
from core.webhooks.signing import signed_headers
from core.webhooks.targets import Resolver, parse_endpoint, public_addresses, resolve_host

log = logging.getLogger(__name__)


class WebhookSender:
    """Delivers due webhook events of every job, a few at a time, off the caller's thread."""

    def __init__(
        self,
        cfg: Settings,
        worker: str,
        *,
        transport: httpx.BaseTransport | None = None,
        rand: Callable[[], float] = random.random,
        resolve: Resolver = resolve_host,
    ) -> None:
        self.cfg, self.worker, self.rand, self.resolve = cfg, worker, rand, resolve
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=cfg.webhook_concurrency, thread_name_prefix="sluice-webhook"
        )
        t = cfg.webhook_timeout_seconds
        self._http = httpx.Client(
            timeout=httpx.Timeout(t, connect=t),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the address check must hold
            transport=transport,
        )

    def deliver_due(self, now: float) -> int:
        """Claim as many due events as there are free threads and start sending them."""
        cfg = self.cfg
        with self._lock:
            free = cfg.webhook_concurrency - self._in_flight
        if free <= 0:
            return 0
        with read_session(cfg.database_url) as session:
            if not has_due_deliveries(session=session, now=now):
                return 0
        with write_session(cfg.database_url) as session:
            claims = claim_deliveries(
                session=session,
                now=now,
                lease=cfg.webhook_lease_seconds,
                limit=free,
                worker=self.worker,
            )
        for claim in claims:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._run, claim)
        return len(claims)

    def _run(self, claim: DeliveryClaim) -> None:
        try:
            self.deliver(claim)
        except Exception:  # the lease lapses and the next claim retries it
            log.exception("webhook %s: recording the attempt failed", claim.delivery_id)
        finally:
            with self._lock:
                self._in_flight -= 1

    def deliver(self, claim: DeliveryClaim) -> str:
        """Send one attempt and record it; the event's status after it."""
        started = time.monotonic()
        status_code, error = self.send(claim)
        now = time.time()
        delivered = status_code is not None and 200 <= status_code < 300
        cfg = self.cfg
        again = None
        if not delivered:
            again = retry_at(
                attempt=claim.attempt,
                first_at=claim.created_at,
                now=now,
                base=cfg.webhook_retry_base_seconds,
                cap=cfg.webhook_retry_max_seconds,
                window=cfg.webhook_retry_window_seconds,
                rand=self.rand,
            )
        with write_session(cfg.database_url) as session:
            outcome = record_attempt(
                session=session,
                claim=claim,
                now=now,
                status_code=status_code,
                error=error,
                retry_at=again,
            )
        took = time.monotonic() - started
        if outcome == DELIVERED:
            log.info(
                "webhook %s delivered (attempt %d, %.2fs)", claim.delivery_id, claim.attempt, took
            )
        else:
            log.warning(
                "webhook %s attempt %d: %s; now %s",
                claim.delivery_id,
                claim.attempt,
                error or f"HTTP {status_code}",
                outcome,
            )
        return outcome

    def request(self, claim: DeliveryClaim) -> httpx.Request:
        """The signed POST of one attempt. Unless private targets are allowed, the host is
        resolved and checked now and the connection goes to the address checked (with the
        URL's host in Host and TLS SNI), so a DNS answer that changes in between cannot
        send it elsewhere."""
        endpoint = parse_endpoint(claim.url)
        headers = signed_headers(
            secret=claim.secret,
            msg_id=claim.delivery_id,
            timestamp=int(time.time()),
            body=claim.body,
        )
        url = httpx.URL(claim.url)
        extensions: dict[str, str] = {}
        if not self.cfg.webhook_allow_private:
            address = public_addresses(endpoint, resolve=self.resolve)[0]
            headers["host"] = url.netloc.decode("ascii")
            if endpoint.scheme == "https":
                extensions["sni_hostname"] = endpoint.host
            url = url.copy_with(host=address.split("%", 1)[0])
        return self._http.build_request(
            "POST", url, content=claim.body, headers=headers, extensions=extensions
        )

    def send(self, claim: DeliveryClaim) -> tuple[int | None, str | None]:
        """POST the event: (status code, None), or (None, what went wrong). The answer's
        body is not read."""
        try:
            request = self.request(claim)
        except InvalidInput as exc:
            return None, f"{exc.code}: {exc.message}"
        try:
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            return None, f"timeout: {type(exc).__name__} after {self.cfg.webhook_timeout_seconds}s"
        except httpx.HTTPError as exc:
            return None, f"connection_error: {type(exc).__name__}: {exc}"
        response.close()
        return response.status_code, None

    def close(self) -> None:
        """Stop taking events; attempts in flight finish or let their leases lapse."""
        self._pool.shutdown(wait=False)
        self._http.close()
