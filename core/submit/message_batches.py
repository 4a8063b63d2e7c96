"""Submitting an Anthropic message batch: every request is checked first (all or nothing,
the error naming the request's index), then the batch and one job per model are written
in one transaction, each job's requests bucketed and cut into chunks as any job's."""

from __future__ import annotations

import time
from typing import Any

from core.codec import compress
from core.contracts.anthropic_requests import (
    REQUEST_FIELDS,
    check_custom_id,
    check_message_params,
    message_chars,
)
from core.contracts.items import ItemInvalid
from core.db import write_session
from core.errors import InvalidInput, TooLarge
from core.store.jobs import JobSpec
from core.store.message_batches import MessageBatchSpec, create_message_batch
from core.store.quotas import check_job_quotas
from core.submit.jobs import Submitter, announce, chunk_size, count_submission, job_chunk_rows
from core.tables import MessageBatch

MAX_REQUESTS = 100_000  # Anthropic's limit per batch
MAX_MODELS = 255  # a request's job position is one byte
PROCESSING_SECONDS = 24 * 3600  # as Anthropic's: unrun requests then expire


def _refuse(index: int, exc: ItemInvalid) -> InvalidInput:
    param = f"requests[{index}].{exc.field}"
    return InvalidInput(
        f"{param}: {exc.message}", code=exc.code, param=param, details={"index": index}
    )


def _check_request(sub: Submitter, raw: Any) -> tuple[str, str, dict[str, Any]]:
    """(custom_id, model, normalized body) of one request; raises ItemInvalid."""
    if not isinstance(raw, dict):
        raise ItemInvalid("invalid_request", "a request must be {custom_id, params}", "request")
    unknown = sorted(raw.keys() - REQUEST_FIELDS)
    if unknown:
        raise ItemInvalid("unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
    custom_id = check_custom_id(raw.get("custom_id"))
    body = check_message_params(raw.get("params"))
    model = raw["params"]["model"]
    spec = sub.registry.get(model)
    if spec is None:
        message = f"model {model!r} is not registered; GET /v1/models lists them"
        raise ItemInvalid("model_not_found", message, "params.model")
    if spec.task != "generate":
        message = f"model {model!r} does {spec.task}; messages need a generate model"
        raise ItemInvalid("model_task_mismatch", message, "params.model")
    chars = message_chars(body)
    if chars > sub.cfg.max_input_chars:
        message = f"the messages have {chars} characters; at most {sub.cfg.max_input_chars}"
        raise ItemInvalid("input_too_large", message, "params.messages")
    return custom_id, model, body


def submit_message_batch(sub: Submitter, *, tenant_id: str, requests: list[Any]) -> MessageBatch:
    """A message batch whose requests all passed their checks (nothing is written for a
    batch with one invalid request), its jobs queued and announced."""
    cfg = sub.cfg
    limit = min(MAX_REQUESTS, cfg.max_inputs_per_job)
    if not requests:
        raise InvalidInput("requests must hold at least one request", param="requests")
    if len(requests) > limit:
        raise TooLarge(
            f"the batch has {len(requests)} requests; at most {limit}",
            code="too_many_requests",
            param="requests",
        )
    groups: dict[str, tuple[list[tuple[str, Any]], list[int]]] = {}
    ordinals: dict[str, int] = {}  # a model's job position, in order of first request
    positions = bytearray()
    seen: set[str] = set()
    for index, raw in enumerate(requests):
        try:
            custom_id, model, body = _check_request(sub, raw)
            if custom_id in seen:
                raise ItemInvalid("duplicate_custom_id", "custom_id is not unique", "custom_id")
        except ItemInvalid as exc:
            raise _refuse(index, exc) from None
        seen.add(custom_id)
        if model not in ordinals:
            if len(ordinals) == MAX_MODELS:
                message = f"a batch may name at most {MAX_MODELS} models"
                raise InvalidInput(message, param="requests")
            ordinals[model] = len(ordinals)
        items, lengths = groups.setdefault(model, ([], []))
        positions.append(ordinals[model])
        items.append((custom_id, body))
        lengths.append(message_chars(body))
    count_submission(sub, tenant_id)
    retention = PROCESSING_SECONDS + cfg.job_retention_days * 86400
    jobs = []
    for model, (items, lengths) in groups.items():
        job = JobSpec(
            model=model,
            task="generate",
            items=items,
            chunk_size=chunk_size(cfg, model, sub.registry[model].chunk_size),
            expires_after_seconds=retention,
            lengths=lengths,
            bucket_window=cfg.bucket_window_items,
            max_chunk_bytes=cfg.max_chunk_bytes,
        )
        jobs.append((job, job_chunk_rows(job)))
    spec = MessageBatchSpec(
        jobs=jobs,
        request_jobs=compress(bytes(positions)),
        total=len(requests),
        processing_seconds=PROCESSING_SECONDS,
        retention_seconds=retention,
    )
    with write_session(cfg.database_url) as session:
        check_job_quotas(
            session=session, tenant_id=tenant_id, cfg=cfg, items=len(requests), jobs=len(groups)
        )
        batch = create_message_batch(
            session=session, tenant_id=tenant_id, spec=spec, now=time.time()
        )
    for model in groups:
        announce(sub, model)
    return batch
