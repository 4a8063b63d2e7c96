"""Requests as data, sent by either client: a `Plan` is one API call (method, path, query,
body, whether it may be sent twice, and how its answer becomes a result); a `Flow` strings
plans together (a submission: upload the inputs, then make the job). Client and AsyncClient
run the same plans and flows, each over its own httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from sluice_client.multipart import content_type, new_boundary
from sluice_client.resources import File

# A plan only produces its result: a plan of a dict is a plan of a Mapping too.
T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def json_body(response: httpx.Response) -> Any:
    """An answer's JSON body."""
    return response.json()


def file_of(response: httpx.Response) -> File:
    """A file's metadata from its JSON."""
    return File.from_api(response.json())


def models_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The models of a `GET /v1/models` answer."""
    return list(response.json()["data"])


def nothing(response: httpx.Response) -> None:
    """For a call whose answer says nothing beyond its success."""
    return None


@dataclass(frozen=True)
class Upload:
    """A JSONL file to stream up in a multipart body: a path (read again for each
    attempt) or lines (`head`, then the rest of `lines`, read once: never sent twice)."""

    fields: dict[str, str]
    filename: str
    path: Path | None = None
    lines: Iterable[bytes] | AsyncIterable[bytes] = ()
    head: tuple[bytes, ...] = ()
    boundary: str = field(default_factory=new_boundary)

    @property
    def replayable(self) -> bool:
        """Whether the body can be made again for a second attempt."""
        return self.path is not None


@dataclass(frozen=True)
class Plan(Generic[T_co]):
    """One API call: what to send, and `parse`, which turns a successful answer into the
    result (an error answer becomes a typed exception in attempts.py).

    `upload` is a body that each client streams in its own way; `idempotent` overrides the
    method's own answer to "may the server see this twice without harm"."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T_co] = json_body
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    upload: Upload | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: Any = httpx.USE_CLIENT_DEFAULT
    idempotent: bool | None = None

    @property
    def replayable(self) -> bool:
        """Whether the same body can be sent again."""
        return self.upload is None or self.upload.replayable

    @property
    def safe_to_resend(self) -> bool:
        """Whether the server may see this call twice without harm."""
        return self.method in IDEMPOTENT_METHODS if self.idempotent is None else self.idempotent

    def build(
        self,
        http: httpx.Client | httpx.AsyncClient,
        base_url: str,
        headers: Mapping[str, str],
        upload_body: Any = None,
    ) -> httpx.Request:
        """The httpx request of one attempt, with the client's headers (and, for an upload,
        the streamed body its client made)."""
        extra = dict(self.headers)
        if self.upload is not None:
            extra["Content-Type"] = content_type(self.upload.boundary)
        return http.build_request(
            self.method,
            base_url + self.path,
            params=self.params,
            json=self.json,
            content=upload_body if self.upload is not None else self.content,
            headers={**headers, **extra},
            timeout=self.timeout,
        )


@dataclass(frozen=True)
class ReadInline:
    """A flow's step that reads inputs: their JSONL lines while they fit the limits.
    Answered with (lines taken, the first line that did not fit or None, the rest)."""

    inputs: Any
    max_items: int
    max_bytes: int


Step = Plan[Any] | ReadInline
# A flow yields steps, is sent each step's answer, and returns its result.
Flow = Generator[Step, Any, T]
