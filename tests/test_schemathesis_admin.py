"""The /v1/admin routes fuzzed from the OpenAPI spec with an admin key (the spec-wide fuzz in
test_schemathesis.py presents a tenant's key, which these routes refuse): no 5xx, and every
response conforms to the spec."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode

from api.app import create_app
from core.db import write_session
from core.store.tenants import create_key
from tests.test_schemathesis import CURRENT, schema

admin_schema = schema.include(path_regex="^/v1/admin")


@pytest.fixture
def fuzzed_admin_api(cfg) -> Iterator[None]:
    CURRENT.app = create_app(cfg)
    with write_session(cfg.database_url) as session:
        CURRENT.key = create_key(session=session, tenant_name="ops", admin=True)[1]
    yield


@pytest.mark.usefixtures("fuzzed_admin_api")
@admin_schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_admin_route_holds_to_the_spec(case) -> None:
    excluded = [positive_data_acceptance]
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if header is not None and header.mode == GenerationMode.NEGATIVE:
        excluded.append(negative_data_rejection)  # the header replaced is the key's
    case.call_and_validate(
        headers={"Authorization": f"Bearer {CURRENT.key}"}, excluded_checks=excluded
    )
