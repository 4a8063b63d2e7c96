"""Submitting at most once per key: a request with an Idempotency-Key that an earlier one
of the tenant's (within IDEMPOTENCY_TTL_SECONDS) made a job with gets that job back; the
same key on a different request is a Conflict; concurrent requests with one key make one
job (the record is written with the job: core.store.idempotency)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from core.db import read_session
from core.errors import Conflict, InvalidInput
from core.store.idempotency import REQUEST, IdempotencyClaim, find_earlier
from core.tables import Job

IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Submitted:
    """A submission's job, and whether an earlier request with its key made it."""

    job: Job
    replayed: bool


def check_key(key: str) -> str:
    """An Idempotency-Key as given: 1 to 255 printable ASCII characters."""
    if not 0 < len(key) <= MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable ASCII characters "
            "(a UUID, for one)",
            code="invalid_idempotency_key",
            param="Idempotency-Key",
        )
    return key


def request_claim(key: str, route: str, body: Any) -> IdempotencyClaim:
    """The claim of a creating request: its key, and a digest of its route and body (key
    order aside), kept for IDEMPOTENCY_TTL_SECONDS."""
    digest = hashlib.sha256(route.encode())
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return IdempotencyClaim(
        kind=REQUEST,
        key=check_key(key),
        request_hash=digest.hexdigest(),
        ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
    )


def earlier_job(database_url: str, tenant_id: str, claim: IdempotencyClaim) -> Job | None:
    """The job an earlier request with the claim's key made, if it was the same request;
    Conflict(idempotency_key_reused) if it was another."""
    with read_session(database_url) as session:
        earlier = find_earlier(session=session, tenant_id=tenant_id, claim=claim, now=time.time())
    if earlier is None:
        return None
    if not earlier.same_request:
        raise Conflict(
            "this Idempotency-Key was used for a different request in the last 24 hours; "
            "use a new key for a new request",
            code="idempotency_key_reused",
            param="Idempotency-Key",
        )
    return earlier.job


def submit_once(
    database_url: str,
    tenant_id: str,
    claim: IdempotencyClaim | None,
    create: Callable[[IdempotencyClaim | None], Job],
) -> Submitted:
    """create(claim) unless an earlier request with the claim's key made a job (then that
    job); create writes the claim with its job, so of concurrent requests one commits and
    the others answer with its job."""
    if claim is None:
        return Submitted(create(None), replayed=False)
    job = earlier_job(database_url, tenant_id, claim)
    if job is not None:
        return Submitted(job, replayed=True)
    try:
        return Submitted(create(claim), replayed=False)
    except IntegrityError:
        job = earlier_job(database_url, tenant_id, claim)  # the request that won the race
        if job is None:
            raise
        return Submitted(job, replayed=True)
