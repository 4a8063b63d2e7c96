"""Many clients polling while a job runs: status latency and errors on loopback.

    python bench/pollers.py                      # 200 pollers, PostgreSQL, 60,000 items
    python bench/pollers.py --interval 1         # each poller asks once a second
    python bench/pollers.py --api-workers 2      # two API processes
    python bench/pollers.py --pollers 50 --database-url sqlite:///

In one stack (API + one worker, the tiny embed model the tests build), two equal jobs run
one after the other: the first watched by a single poller (the baseline), the second by
--pollers concurrent clients, each sending GET /v1/jobs/{id} back to back (or every
--interval seconds) until the job ends. Printed for each: status-request latency
p50/p95/p99/max, requests/s, non-200 answers (5xx apart), and the job's items/s, so the
cost of the load on the job shows as a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import log, tiny_stack  # noqa: E402
from bench.large import DATA_DIR, DEFAULT_DB, texts  # noqa: E402

ENDED = {"completed", "failed", "cancelled", "expired"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _poll(
    client: Any, url: str, stop: asyncio.Event, out: dict[str, Any], interval: float
) -> None:
    while not stop.is_set():
        if interval and out["latencies"]:
            await asyncio.sleep(interval)
        started = time.perf_counter()
        try:
            r = await client.get(url)
            status = r.status_code
            if status == 200 and r.json()["status"] in ENDED:
                stop.set()
        except Exception as exc:  # a refused or dropped connection counts as an error
            status = type(exc).__name__
        out["latencies"].append(time.perf_counter() - started)
        out["statuses"][status] = out["statuses"].get(status, 0) + 1


async def _watch(
    api_url: str, key: str, job_id: str, pollers: int, interval: float
) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {"latencies": [], "statuses": {}}
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=pollers, max_keepalive_connections=pollers)
    async with httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=limits,
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(
            *(_poll(client, f"/v1/jobs/{job_id}", stop, out, interval) for _ in range(pollers))
        )
        out["seconds"] = time.perf_counter() - started
    return out


def _summary(watched: dict[str, Any], job: dict[str, Any], pollers: int) -> dict[str, Any]:
    lat = [x * 1000 for x in watched["latencies"]]
    statuses = watched["statuses"]
    return {
        "pollers": pollers,
        "requests": len(lat),
        "requests_per_s": len(lat) / watched["seconds"],
        "latency_ms": {
            "p50": statistics.median(lat),
            "p95": _percentile(lat, 0.95),
            "p99": _percentile(lat, 0.99),
            "max": max(lat),
        },
        "non_200": {str(k): v for k, v in statuses.items() if k != 200},
        "5xx": sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500),
        "job_status": job["status"],
        "job_items_per_s": job["counts"]["completed"] / max(job["_seconds"], 1e-9),
    }


def run_job(stack: Any, items: list[str], pollers: int, interval: float) -> dict[str, Any]:
    """Submit, watch with `pollers` clients until it ends, and summarise."""
    started = time.perf_counter()
    job = stack.client.submit(
        model="tiny-embed", inputs=[{"custom_id": f"r{i}", "input": t} for i, t in enumerate(items)]
    )
    watched = asyncio.run(_watch(stack.api_url, stack.key, job["id"], pollers, interval))
    job = stack.client.job(job["id"])
    job["_seconds"] = time.perf_counter() - started
    return _summary(watched, job, pollers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pollers", type=int, default=200)
    ap.add_argument("--items", type=int, default=60_000)
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between polls")
    ap.add_argument("--api-workers", type=int, default=1, help="API processes")
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    corpus = texts(args.data_dir)
    items = [corpus[i % len(corpus)] for i in range(args.items)]
    with tempfile.TemporaryDirectory(prefix="sluice-pollers-") as tmp:
        workdir = Path(tmp)
        with tiny_stack(
            workdir,
            threads=args.threads,
            max_inputs=args.items,
            database_url=args.database_url,
            extra_env={"SLUICE_API_WORKERS": str(args.api_workers)},
        ) as stack:
            log("baseline: one poller")
            base = run_job(stack, items, 1, args.interval)
            log(f"baseline {base}; now {args.pollers} pollers")
            loaded = run_job(stack, items, args.pollers, args.interval)
    report = {
        "database": args.database_url.split("://")[0],
        "items": args.items,
        "interval_s": args.interval,
        "api_workers": args.api_workers,
        "baseline": base,
        "loaded": loaded,
        "job items/s loaded / baseline": loaded["job_items_per_s"] / base["job_items_per_s"],
        "p99 loaded / baseline": loaded["latency_ms"]["p99"] / base["latency_ms"]["p99"],
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
