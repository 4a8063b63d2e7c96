"""Property-based fuzzing of every route from the OpenAPI spec (schemathesis), with a valid
key: no 5xx, and every response conforms to the spec (status codes, content types,
bodies, headers, and invalid requests refused).

One check is left out: positive_data_acceptance, which expects every request the schema
allows to succeed. A spec cannot say that a model must be registered, a file must be JSON
lines or an id must exist, so schema-valid requests rightly get 400 or 404 here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode

from api.app import create_app
from core.config import Settings
from tests.conftest import make_key


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


@pytest.fixture
def fuzzed_api(cfg) -> Iterator[None]:
    cfg = cfg.model_copy(update={"jobs_per_minute": 100_000})
    CURRENT.app = create_app(cfg)
    CURRENT.key = make_key(cfg.database_url, "fuzz")
    yield


@pytest.mark.usefixtures("fuzzed_api")
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_holds_to_the_spec(case) -> None:
    excluded = [positive_data_acceptance]
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if header is not None and header.mode == GenerationMode.NEGATIVE:
        # The mutated header is the Authorization the test replaces with a valid key, so
        # what is sent is no longer the negative case schemathesis made.
        excluded.append(negative_data_rejection)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {CURRENT.key}"}, excluded_checks=excluded
    )
