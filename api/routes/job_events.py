"""Live progress of a job as server-sent events: GET /v1/jobs/{id}/events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import STRICT_QUERY, CallerDep
from api.job_events import (
    HEARTBEAT,
    PROGRESS_MIN_SECONDS,
    RETRY_MS,
    Seen,
    counts_of,
    events_for,
    parse_event_id,
)
from api.job_watch import JobWatcher, Snapshot
from api.routes.jobs import readable_by, visible
from api.schemas import ERROR_RESPONSES
from api.stream_slots import StreamSlots
from core import states
from core.tables import Job

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES, dependencies=STRICT_QUERY
)
EVENT_STREAM = "text/event-stream"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStreamResponse(StreamingResponse):
    """A text/event-stream response."""

    media_type = EVENT_STREAM


async def _events(
    *,
    watcher: JobWatcher[Job],
    slots: StreamSlots,
    tenant_id: str,
    snapshot: Snapshot[Job],
    seen: Seen,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """The stream: progress, status and end events as the job's watch sees it change, a
    heartbeat comment when idle; it ends after `end` (or if the job is deleted), and a
    client that disconnects cancels it, which leaves the watch and frees the slot."""
    assert snapshot.value is not None
    with slots.held(tenant_id):
        async with watcher.listen(snapshot.value.id) as listener:
            yield b"retry: %d\n\n" % RETRY_MS
            last_progress = -PROGRESS_MIN_SECONDS
            last_write = time.monotonic()
            while snapshot.value is not None:
                now = time.monotonic()
                events = events_for(
                    seen, snapshot, progress_due=now - last_progress >= PROGRESS_MIN_SECONDS
                )
                if events:
                    if any(e.name == "progress" for e in events):
                        last_progress = now
                    seen = events[-1].seen
                    yield b"".join(e.encode() for e in events)
                    last_write = now
                    if seen.ended:
                        return
                timeout = heartbeat - (now - last_write)
                if seen.counts != counts_of(snapshot.value):  # a progress event held back
                    timeout = min(timeout, PROGRESS_MIN_SECONDS - (now - last_progress))
                newer = await listener.next(
                    snapshot.version, max(timeout, 0.0), ride_out_errors=True
                )
                if newer is not None:
                    snapshot = newer
                elif time.monotonic() - last_write >= heartbeat:
                    yield HEARTBEAT
                    last_write = time.monotonic()


@router.get(
    "/{job_id}/events",
    summary="Live progress as server-sent events",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "`progress`, `status` and a final `end` event, `: ping` comments",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        204: {"description": "Resumed after the job's `end` event: nothing more to send"},
    },
)
async def job_events(
    job_id: str,
    caller: CallerDep,
    request: Request,
    last_event_id: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Resume: the id of the last event received; only what changed since "
            "is sent",
        ),
    ] = None,
) -> Response:
    """`progress` events (counts, items/s, ETA) as the counts change, at most two a second;
    a `status` event (the job as `GET /v1/jobs/{id}` shows it) first and on every change of
    status; `end` (the job again) once it has ended, then the stream closes. Every event
    has an id; `Last-Event-ID` resumes with only what changed since."""
    state = request.app.state
    snapshot = await state.job_watcher.current(job_id)
    job = visible(snapshot.value, readable_by(caller), job_id)
    seen = parse_event_id(last_event_id)
    if seen.ended:
        if job.status in states.JOB_TERMINAL:
            return Response(status_code=204)
        seen = replace(seen, ended=False)
    state.stream_slots.check(caller.tenant.id)
    return EventStreamResponse(
        _events(
            watcher=state.job_watcher,
            slots=state.stream_slots,
            tenant_id=caller.tenant.id,
            snapshot=snapshot,
            seen=seen,
            heartbeat=state.settings.event_heartbeat_seconds,
        ),
        headers=STREAM_HEADERS,
    )
