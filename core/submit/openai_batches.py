"""Submitting an OpenAI batch: a file of request lines to one endpoint becomes a job in
`validating`, whose lines a worker's ingest checks through the same path as a file job."""

from __future__ import annotations

import re
from typing import Any

from core.blobs import storage_named
from core.contracts.openai_requests import ENDPOINT_TASKS
from core.contracts.spec import ModelSpec
from core.db import read_session
from core.errors import InvalidInput, ModelUnavailable, NotFound, shown
from core.jsonl import LineError, is_blank, parse_object, split_lines
from core.store.files import get_file
from core.submit.checks import check_metadata, check_webhook_option
from core.submit.jobs import Submitter, count_submission, write_file_job
from core.tables import File, Job

WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 7 * 86400
BATCH_PURPOSE = "batch"


def window_seconds(text: str) -> int:
    """Seconds of a completion window such as "24h" (1m to 7d)."""
    match = re.fullmatch(r"([1-9][0-9]{0,5})([smhd])", text)
    seconds = int(match.group(1)) * WINDOW_UNITS[match.group(2)] if match else 0
    if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        raise InvalidInput(
            'completion_window must be "24h", or a window from 1m to 7d such as "1h"',
            code="invalid_completion_window",
            param="completion_window",
        )
    return seconds


def first_model(sub: Submitter, file: File) -> str:
    """The model named by the file's first request (every other line must name it too,
    which the ingest checks)."""
    cfg = sub.cfg
    storage = storage_named(file.storage, database_url=cfg.database_url, files_dir=cfg.files_dir)
    lines = split_lines(storage.read(file.id), cfg.max_line_bytes)
    try:
        for number, line in lines:
            if is_blank(line):
                continue
            body = parse_object(number, line).get("body")
            model = body.get("model") if isinstance(body, dict) else None
            if not isinstance(model, str):
                raise InvalidInput(
                    f"line {number}: the request has no body.model",
                    code="invalid_batch_file",
                    param="input_file_id",
                    details={"line": number},
                )
            return model
    except LineError as exc:
        raise InvalidInput(
            f"line {exc.line}: {exc.message}",
            code="invalid_batch_file",
            param="input_file_id",
            details={"line": exc.line},
        ) from None
    finally:
        lines.close()
    raise InvalidInput("the file has no requests", code="empty_file", param="input_file_id")


def _batch_model(sub: Submitter, model: str, endpoint: str, task: str) -> ModelSpec:
    """The registered model the requests name, if it serves the endpoint's task."""
    spec = sub.registry.get(model)
    if spec is None:
        raise ModelUnavailable(
            f"the requests name model {shown(model)}, which is not registered; GET /v1/models "
            "lists them",
            code="model_not_found",
            param="body.model",
        )
    if spec.task != task:
        raise InvalidInput(
            f"model {shown(model)} does {spec.task}; {endpoint} needs a {task} model",
            code="model_task_mismatch",
            param="body.model",
        )
    return spec


def submit_batch(
    sub: Submitter,
    *,
    tenant_id: str,
    endpoint: str,
    input_file_id: str,
    completion_window: str,
    metadata: dict[str, str],
    on_invalid: str = "fail",
    webhook: dict[str, Any] | None = None,
) -> Job:
    """A batch in `validating`, due within its completion window; a worker checks every
    line (its url, method, body and model) before any request runs."""
    cfg = sub.cfg
    task = ENDPOINT_TASKS.get(endpoint)
    if task is None:
        raise InvalidInput(
            f"endpoint {shown(endpoint)} is not supported; use one of " + ", ".join(ENDPOINT_TASKS),
            code="unsupported_endpoint",
            param="endpoint",
        )
    window = window_seconds(completion_window)
    check_metadata(metadata, cfg.max_metadata_pairs)
    target = check_webhook_option(cfg, webhook)
    with read_session(cfg.database_url) as session:
        file = get_file(session=session, tenant_id=tenant_id, file_id=input_file_id)
    if file is None:
        raise NotFound(f"no file {shown(input_file_id)}", param="input_file_id")
    if file.purpose != BATCH_PURPOSE:
        raise InvalidInput(
            f"the file was uploaded with purpose {file.purpose!r}; batches take purpose batch",
            code="invalid_file_purpose",
            param="input_file_id",
        )
    spec = _batch_model(sub, first_model(sub, file), endpoint, task)
    count_submission(sub, tenant_id)
    return write_file_job(
        sub,
        tenant_id=tenant_id,
        model=spec.name,
        task=task,
        params={},
        priority=0,
        metadata=dict(metadata),
        input_file_id=file.id,
        lines=file.lines,
        on_invalid=on_invalid,
        # Results outlive the window by the usual retention.
        expires_after_seconds=window + cfg.job_retention_days * 86400,
        endpoint=endpoint,
        completion_window=completion_window,
        window_seconds=window,
        webhook=target,
    )
