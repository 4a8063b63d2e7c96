"""The Idempotency-Key header of creating requests (POST /v1/jobs, POST /v1/batches): the
claim a request makes with it, and the mark on an answer that an earlier request made."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request, Response
from pydantic import BaseModel

from core.store.idempotency import IdempotencyClaim
from core.submit.idempotency import Submitted, request_claim

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string of yours (a UUID) of up to 255 printable ASCII "
        "characters: a request repeated with it within 24 hours gets the first one's job, "
        "not a second job; a different request with it is refused (409 "
        "idempotency_key_reused). Keys are per tenant.",
    ),
]
# Set on an answer that is the job an earlier request with the key made.
REPLAYED_HEADER = "Idempotent-Replayed"


def claim_of(key: str | None, request: Request, body: BaseModel) -> IdempotencyClaim | None:
    """The claim of a request with an Idempotency-Key (None without one): the key, and a
    digest of the route and the body as validated."""
    if key is None:
        return None
    route = f"{request.method} {request.url.path}"
    return request_claim(key, route, body.model_dump(mode="json"))


def mark(response: Response, submitted: Submitted) -> None:
    """Say on the answer whether its job is an earlier request's."""
    if submitted.replayed:
        response.headers[REPLAYED_HEADER] = "true"
