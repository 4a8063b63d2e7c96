"""Property-based fuzzing of every route from the OpenAPI spec (schemathesis), in-process on
both databases:

- every route with a valid key: no 5xx, and every response conforms to the spec (status
  codes, content types, bodies, headers, and invalid requests refused);
- every /v1 route without an Authorization header, with a wrong key and with another
  scheme: 401, before anything else is looked at (and schemathesis's ignored_auth check
  probes each linked call of the stateful run the same way);
- stateful: the spec's links chain a created job, file or batch into the routes that take
  its id (read, results, cancel, retry, delete), with the created objects real (a valid
  body, the tiny model run in-process), and every answer along a chain conforms too.

One check is left out: positive_data_acceptance, which expects every request the schema
allows to succeed. A spec cannot say that a model must be registered, a file must be JSON
lines or an id must exist, so schema-valid requests rightly get 400 or 404 here."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode

from api.app import create_app
from core.config import Settings
from core.db import get_engine, migrate
from tests.conftest import make_key, worker_ctx
from tests.services import REDIS_URL, delete_prefix, pg_schema, redis_client
from tests.test_batches import EMBED, request
from tests.test_retry_retention import _run_all


class _CurrentApp:
    """The ASGI app of the running test (the schema is loaded once, at import)."""

    app: Any = create_app(Settings(), check_db=False)
    key = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


CURRENT = _CurrentApp()
# The dashboard's list stream never ends by itself (a fuzzed call would wait minutes for
# its body): tests/test_dashboard_api.py reads it.
schema = schemathesis.openapi.from_asgi("/openapi.json", CURRENT).exclude(
    path="/v1/dashboard/events"
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_cfg(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, registry_file: Path
) -> Iterator[Settings]:
    """One migrated database and Redis prefix for the module's fuzzing on each database
    (migrating for every operation would cost more than fuzzing it)."""
    redis = redis_client()
    prefix = f"sluicetest:{uuid.uuid4().hex[:10]}:"

    def settings_for(url: str) -> Settings:
        migrate(url)
        return Settings(
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            models_file=registry_file,
            jobs_per_minute=100_000,
            quota_uploads_per_minute=100_000,
        )

    try:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'sluice.db'}"
            yield settings_for(url)
            get_engine(url).dispose()
        else:
            with pg_schema() as url:
                yield settings_for(url)
                get_engine(url).dispose()
    finally:
        delete_prefix(redis, prefix)


@pytest.fixture(scope="module")
def fuzzed_api(fuzz_cfg: Settings) -> Iterator[Settings]:
    """The app under test and a key of its own, for the module."""
    CURRENT.app = create_app(fuzz_cfg)
    CURRENT.key = make_key(fuzz_cfg.database_url, f"fuzz-{uuid.uuid4().hex[:6]}")
    yield fuzz_cfg


def _negative_header(case: Any) -> bool:
    """Whether schemathesis made the case's headers invalid on purpose."""
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    return header is not None and header.mode == GenerationMode.NEGATIVE


@pytest.mark.usefixtures("fuzzed_api")
@schema.parametrize()
@FUZZ
def test_every_route_holds_to_the_spec(case) -> None:
    excluded = [positive_data_acceptance]
    if _negative_header(case):
        # The mutated header is the Authorization the test replaces with a valid key, so
        # what is sent is no longer the negative case schemathesis made.
        excluded.append(negative_data_rejection)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {CURRENT.key}"}, excluded_checks=excluded
    )


# What a request without a usable key sends: nothing, a key no tenant has, another scheme,
# a scheme without a key.
NO_KEYS = [None, "Bearer sk-not-a-key", "Basic YWxpY2U6c2VjcmV0", "Bearer"]


def test_every_v1_route_refuses_a_missing_or_wrong_key(fuzzed_api) -> None:
    """Every /v1 operation of the spec (the dashboard's stream too), sent with no usable
    key: 401 with the error envelope and WWW-Authenticate, as the spec declares. The key is
    checked before anything else, so one request per operation and key says it all; the
    stateful run below also probes every linked call without its key (ignored_auth)."""
    client = TestClient(CURRENT.app)  # no lifespan: its end would close the app's watcher
    spec = CURRENT.app.openapi()
    checked = 0
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        url = re.sub(r"{[^}]+}", "x1", path)
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)
            for authorization in NO_KEYS:
                headers = {"Authorization": authorization} if authorization else {}
                r = client.request(method.upper(), url, headers=headers, json={})
                assert r.status_code == 401, (method, path, authorization, r.text)
                expected = "invalid_api_key" if authorization == NO_KEYS[1] else "missing_api_key"
                assert r.json()["error"]["code"] == expected, (method, path, authorization)
                assert r.headers["WWW-Authenticate"] == "Bearer"
                checked += 1
    assert checked >= 4 * 20  # every operation, not a few


LONG = "word " * 5000  # longer than tiny-embed takes: fails with truncate off
JOB_BODY = {
    "model": "tiny-embed",
    "inputs": [
        {"custom_id": "a", "input": "first"},
        {"custom_id": "b", "input": LONG},
        {"custom_id": "c", "input": "third"},
    ],
    "params": {"truncate": False},
}
FILE_LINES = b"".join(
    orjson.dumps({"custom_id": f"c{i}", "input": f"text {i}"}) + b"\n" for i in range(3)
)


CREATING = ("POST /v1/jobs", "POST /v1/files", "POST /v1/batches")
# The chains of each kind of object: its creating route and the routes its links lead to
# (listings and the other read-only routes are fuzzed above), one state machine each so
# every scenario starts from a creation. A live job's event stream lasts as long as the
# job (tests/test_job_events.py reads them).
FAMILIES = {
    "jobs": schema.include(path_regex=r"^/v1/jobs").exclude(
        path_regex=r"/events$|^/v1/jobs$", method="GET"
    ),
    "files": schema.include(path_regex=r"^/v1/files").exclude(method="GET", path="/v1/files"),
    "batches": schema.include(path_regex=r"^/v1/batches").exclude(method="GET", path="/v1/batches"),
}
# Scenarios per family: a job's chains are the most (seven links, two job states).
EXAMPLES = {"jobs": 40, "files": 15, "batches": 15}
# What each family's walk must reach with a real id (the links, not only fuzzed ids).
REACHED = {
    "jobs": [
        ("POST /v1/jobs", 201),
        ("GET /v1/jobs/{job_id}", 200),
        ("GET /v1/jobs/{job_id}/results", 200),
        ("POST /v1/jobs/{job_id}/cancel", 200),
        ("POST /v1/jobs/{job_id}/retry", 201),
    ],
    "files": [
        ("POST /v1/files", 200),
        ("GET /v1/files/{file_id}/content", 200),
        ("DELETE /v1/files/{file_id}", 200),
    ],
    "batches": [
        ("POST /v1/batches", 200),
        ("GET /v1/batches/{batch_id}", 200),
        ("POST /v1/batches/{batch_id}/cancel", 200),
    ],
}


class Chains:
    """Chains that start from a real job, file or batch: the fuzzer's bodies for the
    creating routes are replaced with valid ones, and every other job created is run to its
    end in-process (so both a running and a finished job meet cancel and retry)."""

    cfg: ClassVar[Settings]
    ctx: ClassVar[Any]
    batch_file: ClassVar[str]
    answers: ClassVar[Counter[tuple[str, int]]] = Counter()
    created: ClassVar[int] = 0

    def before_call(self, case) -> None:  # type: ignore[no-untyped-def]
        label = case.operation.label
        # The key is given explicitly (get_call_kwargs), not the one the fuzzer made up:
        # schemathesis's ignored_auth check then probes each route without it, and with
        # a made-up one, and expects a 401.
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        if label == "POST /v1/jobs":
            case.body = dict(JOB_BODY)
        elif label == "POST /v1/files":
            case.body = {"file": FILE_LINES, "purpose": "jobs"}
        elif label == "POST /v1/batches":
            case.body = {
                "input_file_id": Chains.batch_file,
                "endpoint": EMBED,
                "completion_window": "24h",
            }

    def get_call_kwargs(self, case) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return {"headers": {"Authorization": f"Bearer {CURRENT.key}"}}

    def after_call(self, response, case) -> None:  # type: ignore[no-untyped-def]
        label = case.operation.label
        Chains.answers[(label, response.status_code)] += 1
        made = label in ("POST /v1/jobs", "POST /v1/jobs/{job_id}/retry")
        if made and response.status_code == 201:
            Chains.created += 1
            if Chains.created % 2:
                _run_all(Chains.cfg, Chains.ctx)

    def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        excluded = [positive_data_acceptance]
        if case.operation.label in CREATING or _negative_header(case):
            # Its body (or the Authorization header) was replaced: no longer the negative
            # case schemathesis made.
            excluded.append(negative_data_rejection)
        case.validate_response(
            response,
            additional_checks=additional_checks,
            excluded_checks=excluded,
            transport_kwargs=kwargs,
        )


@pytest.mark.parametrize("family", list(FAMILIES))
def test_stateful_links_chain_create_read_cancel_retry_delete(
    fuzzed_api, tiny_runner, family
) -> None:
    cfg = fuzzed_api
    Chains.cfg, Chains.ctx = cfg, worker_ctx(cfg, tiny_runner)
    Chains.answers.clear()
    Chains.created = 0
    # No lifespan: its end would close the app's job watcher, which serves the fuzzer.
    r = TestClient(CURRENT.app).post(
        "/v1/files",
        files={"file": ("b.jsonl", request("r1", EMBED, {"model": "tiny-embed", "input": "x"}))},
        data={"purpose": "batch"},
        headers={"Authorization": f"Bearer {CURRENT.key}"},
    )
    assert r.status_code == 200, r.text
    Chains.batch_file = r.json()["id"]
    machine = type(f"{family}Chains", (Chains, FAMILIES[family].as_state_machine()), {})
    machine.run(
        settings=settings(
            max_examples=EXAMPLES[family],
            stateful_step_count=5,
            # The same walk every run: the chains asserted below are then always walked.
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    answers = Chains.answers
    for label, status in REACHED[family]:
        assert answers[(label, status)] > 0, (label, status, sorted(answers.items()))
