"""Operations of more than one call, written once as flows (generators of plans and
reads that a client answers step by step, sync or async)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice_client import endpoints, submission
from sluice_client.config import ClientConfig
from sluice_client.endpoints import JobData
from sluice_client.inputs import input_path
from sluice_client.plans import Flow, ReadInline


def submit(
    config: ClientConfig,
    options: Mapping[str, Any],
    inputs: Any,
    *,
    on_invalid: str,
    upload: bool | None,
) -> Flow[JobData]:
    """A job of `inputs`: inline while they fit the client's limits (read only that far),
    else uploaded as a streamed file (a path always is) that the job then names."""
    submission.check_on_invalid(on_invalid)
    path = input_path(inputs)
    if path is not None:
        if upload is False:
            raise ValueError("a path is always uploaded as a file; pass its inputs instead")
        file = yield endpoints.upload_file(config, endpoints.upload_of(path))
    else:
        # upload=True reads no line inline: every one goes up in the file.
        max_items, max_bytes = (0, 0) if upload else config.inline_limits(upload)
        taken, overflow, rest = yield ReadInline(inputs, max_items, max_bytes)
        if overflow is None and not upload:
            return (yield endpoints.inline_job(options, taken))
        head = (*taken, overflow) if overflow is not None else tuple(taken)
        file = yield endpoints.upload_file(config, endpoints.upload_of(rest, head=head))
    return (yield endpoints.file_job(options, file.id, on_invalid))
