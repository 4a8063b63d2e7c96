"""OpenAPI links: which routes take the id a creating route answers with (a job's id goes
to its status, results, cancel and retry; a file's to its content and deletion; a batch's
to its status and cancel). They document the API's workflows, and let a fuzzer (the
stateful schemathesis run) chain create, read, cancel, retry and delete."""

from __future__ import annotations

from typing import Any


def _ref(path: str, method: str) -> str:
    """A JSON pointer to an operation of this API's spec."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _links(param: str, targets: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        name: {
            "operationRef": _ref(path, method),
            "parameters": {param: "$response.body#/id"},
        }
        for name, (path, method) in targets.items()
    }


JOB_LINKS = _links(
    "job_id",
    {
        "GetJob": ("/v1/jobs/{job_id}", "get"),
        "GetJobResults": ("/v1/jobs/{job_id}/results", "get"),
        "GetJobDetail": ("/v1/jobs/{job_id}/detail", "get"),
        "GetJobErrors": ("/v1/jobs/{job_id}/errors", "get"),
        "GetJobWebhookDeliveries": ("/v1/jobs/{job_id}/webhook_deliveries", "get"),
        "CancelJob": ("/v1/jobs/{job_id}/cancel", "post"),
        "RetryJob": ("/v1/jobs/{job_id}/retry", "post"),
    },
)
FILE_LINKS = _links(
    "file_id",
    {
        "GetFile": ("/v1/files/{file_id}", "get"),
        "GetFileContent": ("/v1/files/{file_id}/content", "get"),
        "DeleteFile": ("/v1/files/{file_id}", "delete"),
    },
)
BATCH_LINKS = _links(
    "batch_id",
    {
        "GetBatch": ("/v1/batches/{batch_id}", "get"),
        "CancelBatch": ("/v1/batches/{batch_id}/cancel", "post"),
        "GetBatchWebhookDeliveries": ("/v1/batches/{batch_id}/webhook_deliveries", "get"),
    },
)


def linked(status: int, links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` entry that adds links to its success answer."""
    return {status: {"links": links}}
