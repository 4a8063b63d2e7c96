"""The hottest request, a plain `GET /v1/jobs/{id}`, answered without FastAPI's routing,
dependency solving and response validation.

A profile of 200 clients polling one job back to back showed those taking most of the
API's time per request, next to which the job's read (shared by the job watcher) and its
body (rendered once per read) cost little. So a status GET with no query string, whose
key ApiKeyMiddleware has accepted, gets the rendered body of the job's latest read
straight from here: the same bytes the `GET /v1/jobs/{job_id}` route answers. Anything
else, and any answer other than a 200 (no such job, another tenant's, a database error),
goes on to the route, which answers it as always.

Every status GET (plain or a long-poll) first takes its turn from the tenant's status
pacer (api/status_pacing): under a polling storm it waits there, or is refused with 429.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import CALLER_STATE
from api.errors import sluice_response
from api.job_events import job_json
from api.routes import jobs
from core.errors import QuotaExceeded
from core.store.tenants import Caller

STATUS_PATH = re.compile(r"/v1/jobs/([^/\x00]+)")


class StatusFastPath:
    """Answers a plain status GET from the job watcher; passes every other request on."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: its job_watcher
        # The route this answers for, as routing would have put it into the scope.
        self._route = next(r for r in jobs.router.routes if r.endpoint is jobs.get_my_job)  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            STATUS_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        caller = scope.get("state", {}).get(CALLER_STATE) if match else None
        if not isinstance(caller, Caller):
            await self.app(scope, receive, send)
            return
        if not await self._take_turn(caller, scope, receive, send):
            return
        body = None if scope["query_string"] else await self._body(match[1], caller)  # type: ignore[index]
        if body is None:
            await self.app(scope, receive, send)
            return
        # What routing would have set, for whatever reads it (request metrics, logs).
        scope["route"] = self._route
        scope["path_params"] = {"job_id": match[1]}  # type: ignore[index]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _take_turn(self, caller: Caller, scope: Scope, receive: Receive, send: Send) -> bool:
        """Wait for the tenant's turn to read a status; False once refused (429 sent)."""
        pacer = self.state.status_pacer
        wait = pacer.turn(caller.tenant.id)
        if wait is None:
            refusal = QuotaExceeded(
                "too many status reads for this tenant: poll less often, or follow the job "
                "with ?wait= or its /events stream",
                retry_after=pacer.retry_after(caller.tenant.id),
            )
            await sluice_response(refusal)(scope, receive, send)
            return False
        if wait:
            await asyncio.sleep(wait)
        return True

    async def _body(self, job_id: str, caller: Caller) -> bytes | None:
        try:
            snapshot = await self.state.job_watcher.current(job_id)
        except Exception:  # the route meets the same error and answers it (503)
            return None
        job = snapshot.value
        if job is None or not (caller.is_admin or job.tenant_id == caller.tenant.id):
            return None
        return job_json(snapshot)
