"""sluice-client: the Python client of the sluice batch inference API (httpx only).

from sluice_client import Client

with Client("http://localhost:8000", api_key) as client:
    job = client.submit("all-minilm-l6-v2", ["first text", "second text"])
    job.wait(progress=True)
    for line in job.results():
        print(line["custom_id"], line.get("output") or line["error"])
"""

from sluice_client.async_client import AsyncClient
from sluice_client.async_jobs import AsyncJob
from sluice_client.client import Client
from sluice_client.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    ServiceUnavailableError,
    SluiceError,
)
from sluice_client.jobs import Job
from sluice_client.resources import TERMINAL_STATUSES, File

__version__ = "0.1.0"
__all__ = [
    "TERMINAL_STATUSES",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncJob",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "File",
    "InvalidRequestError",
    "Job",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServerError",
    "ServiceUnavailableError",
    "SluiceError",
]
