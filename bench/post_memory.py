"""What one inline POST /v1/jobs costs the API: latency and peak memory, at three sizes and
with two of the largest at once.

    python bench/post_memory.py                          # 1,000, 10,000, 100,000; then 2 x 100,000
    python bench/post_memory.py --sizes 1000 10000 --pair 0 --json /tmp/post.json

A real API process (`sluice api`, no worker: the jobs stay queued) on a fresh SQLite file
and Redis prefix, with the shipped registry (all-minilm-l6-v2, whose tokenizer the API
counts with). Inputs are about --chars characters each (default 560, so 100,000 of them
are about 60 MiB of JSON), cut from a seeded shuffle of ../shared/bench-data. Each body is
encoded before the clock starts. Before each POST the process's peak resident memory
(VmHWM) is reset through /proc/PID/clear_refs; after it, VmHWM minus the idle RSS (the
fresh process after one small job) is the peak above idle. A sampling thread (every 5 ms)
gives the same figure where clear_refs cannot be written.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import log, sluice_stack  # noqa: E402

DATA_DIR = ROOT.parent / "shared" / "bench-data"
MODEL = "all-minilm-l6-v2"
MIB = 1 << 20


def corpus_texts(data_dir: Path, n: int, chars: int, seed: int) -> list[str]:
    """n texts of about `chars` characters: consecutive corpus texts of a seeded shuffle,
    joined and cut (so lengths, and token counts, vary as real paragraphs do)."""
    pool: list[str] = []
    for name in ("wordnet.jsonl.gz", "fortunes.jsonl.gz"):
        with gzip.open(data_dir / name, "rb") as fh:
            pool += [orjson.loads(line)["text"] for line in fh if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(pool)
    out: list[str] = []
    k = 0
    while len(out) < n:
        want = rng.randint(chars // 2, chars * 3 // 2)
        parts: list[str] = []
        size = 0
        while size < want:
            parts.append(pool[k % len(pool)])
            size += len(parts[-1]) + 1
            k += 1
        out.append(" ".join(parts)[:want])
    return out


def job_body(texts: list[str], tag: str) -> bytes:
    """The JSON of an inline job of these texts, custom_ids unique."""
    inputs = [{"custom_id": f"{tag}-{i}", "input": t} for i, t in enumerate(texts)]
    return orjson.dumps({"model": MODEL, "inputs": inputs})


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_mib(pid: int) -> float:
    """The process's resident memory now, in MiB."""
    return _status_kb(pid, "VmRSS") / 1024


class Repeating:
    """A daemon thread that calls `tick` every `every` seconds over a `with` stretch."""

    every = 0.005

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        def loop() -> None:
            while not self._stop.wait(self.every):
                self.tick()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()


class PeakMeter(Repeating):
    """The peak RSS of a process over a stretch: VmHWM after resetting it through
    clear_refs, and the highest of RSS samples every 5 ms (the figure where the reset is
    not allowed)."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid
        self.sampled = 0.0
        self.reset_ok = False
        self.alive = True

    def __enter__(self) -> Self:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.sampled = rss_mib(self.pid)
        super().__enter__()
        return self

    def tick(self) -> None:
        if self.alive:
            try:
                self.sampled = max(self.sampled, rss_mib(self.pid))
            except (OSError, KeyError):  # the process is gone
                self.alive = False

    @property
    def peak(self) -> float:
        """The peak over the stretch, in MiB."""
        if self.reset_ok:
            return max(self.sampled, _status_kb(self.pid, "VmHWM") / 1024)
        return self.sampled


def post(url: str, key: str, body: bytes) -> tuple[int, float, str]:
    """POST a job body; (status, seconds, job id or error text)."""
    import httpx

    started = time.perf_counter()
    r = httpx.post(
        f"{url}/v1/jobs",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=600,
    )
    seconds = time.perf_counter() - started
    detail = r.json().get("id", "") if r.status_code == 201 else r.text[:300]
    return r.status_code, seconds, detail


class HealthProbe(Repeating):
    """GET /healthz every 20 ms over a stretch; the slowest answer is how long the event
    loop was held."""

    every = 0.02

    def __init__(self, url: str) -> None:
        import httpx

        super().__init__()
        self.client = httpx.Client(base_url=url, timeout=60)
        self.slowest = 0.0

    def tick(self) -> None:
        started = time.perf_counter()
        self.client.get("/healthz").raise_for_status()
        self.slowest = max(self.slowest, time.perf_counter() - started)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.client.close()


def settle(pid: int, seconds: float = 1.0) -> float:
    """RSS after the process has had a moment to free what it can, in MiB."""
    time.sleep(seconds)
    return rss_mib(pid)


def measure(
    url: str, key: str, pid: int, idle: float, bodies: list[bytes], label: str
) -> dict[str, Any]:
    """POST the bodies at once (one thread each) and measure the API while it answers."""
    with PeakMeter(pid) as meter, HealthProbe(url) as health, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: post(url, key, b), bodies))
    failed = [f"{s}: {d}" for s, _, d in results if s != 201]
    row = {
        "label": label,
        "body_mib": round(sum(len(b) for b in bodies) / MIB, 1),
        "post_seconds": [round(s, 2) for _, s, _ in results],
        "peak_above_idle_mib": round(meter.peak - idle, 1),
        "peak_source": "VmHWM" if meter.reset_ok else "sampled",
        "rss_after_mib": round(settle(pid) - idle, 1),
        "slowest_healthz_seconds": round(health.slowest, 3),
        "failed": failed,
    }
    log(f"{label}: {row}")
    return row


def main() -> int:
    """Run the measurements; print a table (and save JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument(
        "--pair", type=int, default=100_000, help="two jobs of this size at once (0: none)"
    )
    ap.add_argument("--chars", type=int, default=560, help="mean characters per input")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--json", type=Path, help="also save the figures here")
    args = ap.parse_args()

    from core.contracts.spec import DEFAULT_MODELS_FILE

    largest = max([*args.sizes, args.pair])
    texts = corpus_texts(args.data_dir, largest, args.chars, args.seed)
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="sluice-post-") as tmp,
        sluice_stack(
            model=MODEL,
            models_file=DEFAULT_MODELS_FILE,  # the shipped registry
            threads=os.cpu_count() or 1,
            max_inputs=largest,
            workdir=Path(tmp),
            extra_env={"TOKENIZERS_PARALLELISM": "true"},
            worker=False,  # the jobs stay queued
        ) as stack,
    ):
        url, key, pid = stack.api_url, stack.key, stack.api_pid
        status, _, detail = post(url, key, job_body(texts[:10], "warm"))
        assert status == 201, detail
        idle = settle(pid, 2.0)
        log(f"API pid {pid}, idle RSS {idle:.0f} MiB")
        for n in args.sizes:
            body = job_body(texts[:n], f"s{n}")
            rows.append(measure(url, key, pid, idle, [body], f"{n:,} inputs"))
        if args.pair:
            bodies = [job_body(texts[: args.pair], f"p{i}") for i in range(2)]
            rows.append(measure(url, key, pid, idle, bodies, f"2 x {args.pair:,} at once"))

    print(f"API idle RSS: {idle:.0f} MiB")
    print(
        f"{'job':<24}{'body MiB':>10}{'POST s':>16}{'peak MiB':>10}{'after MiB':>11}"
        f"{'/healthz max s':>16}"
    )
    for row in rows:
        secs = " + ".join(f"{s:.2f}" for s in row["post_seconds"])
        print(
            f"{row['label']:<24}{row['body_mib']:>10.1f}{secs:>16}"
            f"{row['peak_above_idle_mib']:>10.0f}{row['rss_after_mib']:>11.0f}"
            f"{row['slowest_healthz_seconds']:>16.2f}"
        )
    print("(peak and after: MiB above idle; peak from " + rows[0]["peak_source"] + ")")
    problems = [f"{row['label']}: {f}" for row in rows for f in row["failed"]]
    for p in problems:
        print("PROBLEM", p)
    if args.json:
        args.json.write_text(
            orjson.dumps({"idle_rss_mib": idle, "rows": rows}, option=orjson.OPT_INDENT_2).decode()
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
