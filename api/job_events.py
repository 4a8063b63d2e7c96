"""Server-sent events of one job: which events a change sends, the ids that let a client
resume, and their wire format. Pure: the route (api/routes/job_events.py) feeds it the
watcher's snapshots.

An event's id names what the client has been sent once it has that event: the status of
its last `status` event, and the counts of its last `progress` or `status` event (plus
`.end` after the `end` event), e.g. `in_progress.5000.1200.3`. The server keeps nothing
per stream, so a client resuming with `Last-Event-ID`, on this API process or another,
gets exactly what differs from that state: a `progress` event if the counts moved, a
`status` event if the status changed, `end` if the job has ended, and nothing it has
already seen. Ids only move forward, since a job's counts only grow and its status only
moves on. A missing or malformed id is a fresh start: everything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import orjson

from api.job_watch import Snapshot
from api.views import job_out
from core import states
from core.tables import Job

# Progress events a stream sends at most this often (counts that move faster are sent at
# this pace, the latest each time); status and end events are never held back.
PROGRESS_MIN_SECONDS = 0.5
# The reconnection delay an EventSource is told to use, in milliseconds.
RETRY_MS = 3000
HEARTBEAT = b": ping\n\n"
_ID = re.compile(
    r"(?P<status>[a-z_]+|-)\.(?P<total>\d{1,12})\.(?P<done>\d{1,12})\.(?P<failed>\d{1,12})(?P<end>\.end)?"
)

Counts = tuple[int, int, int]  # total, completed, failed


@dataclass(frozen=True)
class Seen:
    """What a client has been sent: the status of its last status event, the counts of its
    last progress or status event (None before any), and whether it has had the end."""

    status: str | None = None
    counts: Counts | None = None
    ended: bool = False

    def event_id(self) -> str:
        """This state as an event id."""
        total, done, failed = self.counts or (0, 0, 0)
        return f"{self.status or '-'}.{total}.{done}.{failed}{'.end' if self.ended else ''}"


def parse_event_id(raw: str | None) -> Seen:
    """The state a Last-Event-ID names; a fresh start for none or a malformed one."""
    match = _ID.fullmatch(raw or "")
    if match is None or (match["status"] != "-" and match["status"] not in states.JOB_STATUSES):
        return Seen()
    status = None if match["status"] == "-" else match["status"]
    counts = (int(match["total"]), int(match["done"]), int(match["failed"]))
    return Seen(
        status=status,
        counts=counts if status or counts != (0, 0, 0) else None,
        ended=bool(match["end"]),
    )


def counts_of(job: Job) -> Counts:
    """A job's (total, completed, failed)."""
    return (job.total, job.completed, job.failed)


@dataclass(frozen=True)
class Event:
    """One event to send, and the client's state once it has it."""

    name: str
    data: bytes
    seen: Seen

    def encode(self) -> bytes:
        """The event on the wire."""
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (
            self.seen.event_id().encode(),
            self.name.encode(),
            self.data,
        )


def job_body(snapshot: Snapshot[Job]) -> dict[str, Any]:
    """The job of a snapshot as `GET /v1/jobs/{id}` shows it, rendered once per snapshot
    for every stream and long-poll that shows it."""
    body = snapshot.memo.get("body")
    if body is None:
        assert snapshot.value is not None
        body = snapshot.memo["body"] = job_out(snapshot.value).model_dump(mode="json")
    return body


def _data(snapshot: Snapshot[Job], name: str) -> bytes:
    data = snapshot.memo.get(name)
    if data is None:
        body = job_body(snapshot)
        if name == "progress":
            body = {
                "id": body["id"],
                "status": body["status"],
                "counts": body["counts"],
                "items_per_second": body["throughput"],
                "eta_seconds": body["eta_seconds"],
            }
        data = snapshot.memo[name] = orjson.dumps(body)
    return data


def events_for(seen: Seen, snapshot: Snapshot[Job], *, progress_due: bool) -> list[Event]:
    """What a client that has been sent `seen` gets for the job in `snapshot`, in order:
    progress (if the counts moved, and progress_due or the status changed too), status (if
    it changed), end (if the job has ended)."""
    job = snapshot.value
    assert job is not None
    out: list[Event] = []
    counts = counts_of(job)
    status_changed = job.status != seen.status
    ended = job.status in states.JOB_TERMINAL
    if counts != seen.counts and (progress_due or status_changed or ended):
        seen = replace(seen, counts=counts)
        out.append(Event("progress", _data(snapshot, "progress"), seen))
    if status_changed:
        seen = replace(seen, status=job.status, counts=counts)
        out.append(Event("status", _data(snapshot, "status"), seen))
    if ended:
        seen = replace(seen, counts=counts, ended=True)
        out.append(Event("end", _data(snapshot, "status"), seen))
    return out
