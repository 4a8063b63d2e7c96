"""Many clients watching a job while it runs: status latency, errors, how soon they hear the
job has ended, and what the watching costs the job.

    python bench/pollers.py                         # 200 watchers, PostgreSQL, 60,000 items
    python bench/pollers.py --kinds get --interval 0   # 200 back-to-back GETs
    python bench/pollers.py --api-workers 2         # two API processes
    python bench/pollers.py --pollers 50 --database-url sqlite:///

In one stack (API + one worker, the tiny embed model the tests build), equal jobs run one
after the other: a warm-up, then --rounds times a baseline watched by one long-poll and a
loaded job watched by --pollers concurrent clients, and a last baseline; the loaded jobs'
mean items/s over the baselines' is the cost of the watching, with the machine's drift
averaged out.
The clients are split evenly over --kinds:

- get:  GET /v1/jobs/{id} every --interval seconds (0: back to back), from a random offset;
- wait: long-polls, GET /v1/jobs/{id}?wait=30, asked again as soon as each answers;
- sse:  GET /v1/jobs/{id}/events, one stream each, read to its `end` event.

Each client is one keep-alive connection of bench/raw_http.py, which costs far less CPU
than httpx: the clients share the machine with the API and the worker they measure.

Printed for each kind: requests (GETs; long-poll answers; events), errors (non-200 answers
and failed connections), latency p50/p99/max (a GET's answer; a stream's first event), and
how long after the job's finished_at (from the database) each client knew it had ended.
For the jobs: items/s (created to finished, from the database), the loaded job's over the
baselines' mean, and the cores the API and the clients used while watching.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import log, tiny_stack  # noqa: E402
from bench.large import DATA_DIR, DEFAULT_DB, texts  # noqa: E402
from bench.raw_http import Connection  # noqa: E402

ENDED = {"completed", "failed", "cancelled", "expired"}
KINDS = ("get", "wait", "sse")
LONG_POLL_SECONDS = 30


@dataclass
class Tally:
    """What the clients of one kind saw."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ended_at: list[float] = field(default_factory=list)  # wall clock, when each knew
    events: int = 0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _figures(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ms = [v * 1000 for v in values]
    return {
        "p50": round(statistics.median(ms), 1),
        "p99": round(_percentile(ms, 0.99), 1),
        "max": round(max(ms), 1),
    }


async def _get(conn: Connection, url: str, tally: Tally, interval: float) -> None:
    await asyncio.sleep(random.uniform(0, interval))
    while True:
        started = time.perf_counter()
        try:
            status, body = await conn.get(url)
        except (OSError, asyncio.IncompleteReadError) as exc:  # refused or dropped: an error
            tally.errors[type(exc).__name__] += 1
            await asyncio.sleep(max(interval, 0.1))
            continue
        tally.latencies.append(time.perf_counter() - started)
        if status != 200:
            tally.errors[str(status)] += 1
        elif orjson.loads(body)["status"] in ENDED:
            tally.ended_at.append(time.time())
            return
        await asyncio.sleep(interval)


async def _wait(conn: Connection, url: str, tally: Tally) -> None:
    while True:
        try:
            status, body = await conn.get(f"{url}?wait={LONG_POLL_SECONDS}")
        except (OSError, asyncio.IncompleteReadError) as exc:
            tally.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.1)
            continue
        if status != 200:
            tally.errors[str(status)] += 1
            await asyncio.sleep(0.1)
            continue
        tally.events += 1
        if orjson.loads(body)["status"] in ENDED:
            tally.ended_at.append(time.time())
            return


async def _sse(conn: Connection, url: str, tally: Tally) -> None:
    last_id: str | None = None
    while True:  # reconnects (resuming) if the stream breaks before its end
        started = time.perf_counter()
        try:
            status, lines = await conn.lines(url, {"Last-Event-ID": last_id} if last_id else None)
            if status != 200:
                tally.errors[str(status)] += 1
                await asyncio.sleep(0.1)
                continue
            first = True
            async for line in lines:
                if line.startswith("id: "):
                    last_id = line[4:]
                elif line.startswith("event: "):
                    tally.events += 1
                    if first:
                        tally.latencies.append(time.perf_counter() - started)
                        first = False
                    if line == "event: end":
                        tally.ended_at.append(time.time())
                        return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.1)


async def _watch(
    api_url: str, key: str, job_id: str, kinds: list[str], pollers: int, interval: float
) -> dict[str, Tally]:
    tallies = {kind: Tally() for kind in kinds}
    url = f"/v1/jobs/{job_id}"

    async def one(i: int) -> None:
        kind = kinds[i % len(kinds)]
        conn = Connection(api_url, {"Authorization": f"Bearer {key}"})
        try:
            if kind == "get":
                await _get(conn, url, tallies[kind], interval)
            elif kind == "wait":
                await _wait(conn, url, tallies[kind])
            else:
                await _sse(conn, f"{url}/events", tallies[kind])
        finally:
            conn.close()

    await asyncio.gather(*(one(i) for i in range(pollers)))
    return tallies


def _stat(pid: int) -> list[str]:
    """A process's /proc stat fields from the third (state) on."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of a process and its children (the API processes
    of `--api-workers N`), threads included."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    ticks = 0
    for p in pids:
        try:
            fields = _stat(p)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _job_times(db_url: str, job_id: str) -> tuple[float, float, float]:
    from sqlalchemy import select

    from core.db import read_session
    from core.tables import Job

    with read_session(db_url) as session:
        row = session.execute(
            select(Job.created_at, Job.started_at, Job.finished_at).where(Job.id == job_id)
        ).one()
    return row[0], row[1], row[2]


def run_job(
    stack: Any, items: list[str], kinds: list[str], pollers: int, interval: float
) -> dict[str, Any]:
    """Submit, watch with `pollers` clients of `kinds` until it ends, and summarise."""
    job = stack.client.submit(
        model="tiny-embed", inputs=[{"custom_id": f"r{i}", "input": t} for i, t in enumerate(items)]
    )
    # CPU from here on: the watching, not the POST's validation of the inputs.
    api_before, client_before = _cpu_seconds(stack.api_pid), time.process_time()
    started = time.perf_counter()
    tallies = asyncio.run(_watch(stack.api_url, stack.key, job["id"], kinds, pollers, interval))
    seconds = time.perf_counter() - started
    api_cpu = _cpu_seconds(stack.api_pid) - api_before
    client_cpu = time.process_time() - client_before
    job = stack.client.job(job["id"])
    created, _, finished = _job_times(stack.db_url, job["id"])
    out: dict[str, Any] = {
        "pollers": pollers,
        "job_status": job["status"],
        "job_items_per_s": round(job["counts"]["completed"] / (finished - created), 1),
        "watched_s": round(seconds, 1),
        # CPU seconds per second of watching (1.0 is one core) of the API, and of this
        # process's clients, which share the machine with the API and the worker.
        "api_cores": round(api_cpu / seconds, 3),
        "clients_cores": round(client_cpu / seconds, 3),
    }
    for kind, tally in tallies.items():
        out[kind] = {
            "clients": sum(1 for i in range(pollers) if kinds[i % len(kinds)] == kind),
            "requests": len(tally.latencies) if kind == "get" else tally.events,
            "requests_per_s": round(len(tally.latencies) / seconds, 1) if kind == "get" else None,
            "errors": dict(tally.errors),
            "latency_ms": _figures(tally.latencies),
            "knew_it_ended_ms": _figures([t - finished for t in tally.ended_at]),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pollers", type=int, default=200)
    ap.add_argument("--kinds", default="get,wait,sse", help="comma-separated: get, wait, sse")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between a get's polls")
    ap.add_argument("--items", type=int, default=60_000)
    ap.add_argument("--api-workers", type=int, default=1, help="API processes")
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="loaded jobs, each between baselines")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or set(kinds) - set(KINDS):
        ap.error(f"--kinds takes {', '.join(KINDS)}")

    corpus = texts(args.data_dir)
    items = [corpus[i % len(corpus)] for i in range(args.items)]
    with (
        tempfile.TemporaryDirectory(prefix="sluice-pollers-") as tmp,
        tiny_stack(
            Path(tmp),
            threads=args.threads,
            max_inputs=args.items,
            database_url=args.database_url,
            extra_env={"SLUICE_API_WORKERS": str(args.api_workers)},
        ) as stack,
    ):
        log("warm-up job")
        run_job(stack, items[: max(1, args.items // 10)], ["wait"], 1, args.interval)
        baselines, loaded = [], []
        for n in range(args.rounds):
            baselines.append(run_job(stack, items, ["wait"], 1, args.interval))
            log(f"baseline {baselines[-1]['job_items_per_s']} items/s; now {args.pollers} watchers")
            loaded.append(run_job(stack, items, kinds, args.pollers, args.interval))
            log(f"round {n + 1}: loaded {loaded[-1]['job_items_per_s']} items/s")
        baselines.append(run_job(stack, items, ["wait"], 1, args.interval))
    mean = statistics.mean
    summary: dict[str, Any] = {
        "job items/s loaded / baseline": round(
            mean(x["job_items_per_s"] for x in loaded)
            / mean(x["job_items_per_s"] for x in baselines),
            3,
        ),
        "errors": sum(sum(x[k]["errors"].values()) for x in loaded for k in kinds),
    }
    for kind in kinds:
        worst = [x[kind]["latency_ms"] for x in loaded if x[kind]["latency_ms"]]
        ended = [x[kind]["knew_it_ended_ms"] for x in loaded if x[kind]["knew_it_ended_ms"]]
        summary[kind] = {
            "latency_ms_p50": max((w["p50"] for w in worst), default=None),
            "latency_ms_p99": max((w["p99"] for w in worst), default=None),
            "knew_it_ended_ms_p99": max((e["p99"] for e in ended), default=None),
        }
    report = {
        "database": args.database_url.split("://")[0],
        "items": args.items,
        "kinds": kinds,
        "get_interval_s": args.interval,
        "api_workers": args.api_workers,
        "baselines": baselines,
        "loaded": loaded,
        "summary (worst round)": summary,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
