"""What the dashboard asks the API besides the jobs routes: who its key is, and a live
stream of the jobs list (server-sent events, read with fetch() so the key travels in the
Authorization header, never in a URL)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Hashable

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.dashboard_schemas import Principal
from api.deps import STRICT_QUERY, CallerDep
from api.job_list_feed import JobListFeed, Scope
from api.routes.jobs import TenantQuery, listing_owner
from api.schemas import ERROR_RESPONSES
from api.views import job_out
from core.db import read_session
from core.errors import ServiceUnavailable
from core.store.live_jobs import live_jobs

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, dependencies=STRICT_QUERY)
# The list stream: one read per scope per interval; at most this many jobs a snapshot
# (newest first) and this many streams a process; a comment every HEARTBEAT_SECONDS
# keeps proxies from closing a quiet stream; each stream ends after STREAM_SECONDS (the
# page reconnects at once, and a revoked key stops there).
INTERVAL_SECONDS = 1.0
MAX_JOBS = 200
MAX_STREAMS = 500
HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 300.0
# A job that ended within this long still rides in snapshots, so every watcher sees how.
ENDED_WITHIN_SECONDS = 60.0
# Fields of a job the list has no use for, left out of snapshots (params may be large).
LEFT_OUT = {"params", "errors", "metadata"}


@router.get("/me", response_model=Principal, tags=["system"], summary="Who this key is")
def who_am_i(caller: CallerDep) -> Principal:
    """The key's tenant and scopes (the dashboard shows every tenant for an admin key)."""
    return Principal(
        tenant_id=caller.tenant.id,
        tenant_name=caller.tenant.name,
        scopes=sorted(caller.scopes),
        is_admin=caller.is_admin,
    )


def snapshot_reader(database_url: str) -> JobListFeed:
    """A feed whose reads list a scope's live jobs from this database."""

    def read(scope: Scope) -> tuple[Hashable, bytes]:
        now = time.time()
        with read_session(database_url) as session:
            jobs = live_jobs(
                session=session,
                tenant_id=scope,
                ended_since=now - ENDED_WITHIN_SECONDS,
                limit=MAX_JOBS,
            )
            signature = tuple(
                (j.id, j.status, j.total, j.completed, j.failed, j.priority) for j in jobs
            )
            bodies = [job_out(j, now).model_dump(mode="json", exclude=LEFT_OUT) for j in jobs]
        return signature, orjson.dumps({"jobs": bodies, "at": now})

    return JobListFeed(read, interval=INTERVAL_SECONDS, max_watchers=MAX_STREAMS)


def feed_of(request: Request) -> JobListFeed:
    """This process's list feed (made on first use)."""
    state = request.app.state
    feed: JobListFeed | None = getattr(state, "job_list_feed", None)
    if feed is None:
        feed = state.job_list_feed = snapshot_reader(state.settings.database_url)
    return feed


async def _events(feed: JobListFeed, scope: Scope) -> AsyncIterator[bytes]:
    async for item in feed.watch(scope, heartbeat=HEARTBEAT_SECONDS, lasting=STREAM_SECONDS):
        if item is None:
            yield b": ping\n\n"
        else:
            version, payload = item
            yield b"id: %d\nevent: jobs\ndata: %s\n\n" % (version, payload)


@router.get(
    "/dashboard/events",
    tags=["dashboard"],
    summary="Live snapshots of your running jobs (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def job_list_events(
    caller: CallerDep, request: Request, tenant: TenantQuery = None
) -> StreamingResponse:
    """`event: jobs` with `{"jobs": [...], "at"}`: the scope's jobs that are not finished,
    and those that ended in the last minute (newest first, at most 200), sent at once and
    whenever a status or count changes; `: ping` comments in between. An admin key
    watches every tenant, or `tenant`'s. The stream ends after five minutes: reconnect."""
    with read_session(request.app.state.settings.database_url) as session:
        scope = listing_owner(caller, session, tenant)
    feed = feed_of(request)
    if feed.is_full():
        raise ServiceUnavailable(
            "too many live streams on this server; retry shortly", code="too_many_streams"
        )
    return StreamingResponse(
        _events(feed, scope),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
