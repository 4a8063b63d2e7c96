"""A million-line job on PostgreSQL: upload and worker-side validation, API memory, the
whole job end to end on the tiny embed model (with the per-chunk overhead), and the results
download, each at two sizes so bounded memory shows as equal peaks.

    python bench/large.py                              # 100,000 then 1,000,000 lines
    python bench/large.py --sizes 20000 --json /tmp/large.json
    python bench/large.py --database-url sqlite:///   # the embedded default instead

The file is built from ../shared/bench-data (wordnet glosses and fortunes, cycled with a
seeded shuffle; custom_ids unique). The model is the tiny random-weight BERT the tests
build (its speed is not the point: everything around the model is).
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import log, peak_rss_mb, tiny_stack  # noqa: E402

DATA_DIR = ROOT.parent / "shared" / "bench-data"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGETS = {
    "upload + validation lines/s": 50_000,
    "API peak RSS MB": 300,
    "results download lines/s": 100_000,
    "per-chunk overhead share": 0.05,
}


def texts(data_dir: Path) -> list[str]:
    """Every text of the two corpora."""
    out: list[str] = []
    for name in ("wordnet.jsonl.gz", "fortunes.jsonl.gz"):
        with gzip.open(data_dir / name, "rb") as fh:
            out += [orjson.loads(line)["text"] for line in fh if line.strip()]
    return out


def write_file(path: Path, corpus: list[str], n: int, seed: int) -> int:
    """n JSONL lines {custom_id, input}, cycling through a seeded shuffle of the corpus."""
    rng = random.Random(seed)
    order = list(range(len(corpus)))
    rng.shuffle(order)
    with path.open("wb") as fh:
        for start in range(0, n, 10_000):
            fh.write(
                b"".join(
                    orjson.dumps({"custom_id": f"row-{i}", "input": corpus[order[i % len(order)]]})
                    + b"\n"
                    for i in range(start, min(n, start + 10_000))
                )
            )
    return path.stat().st_size


def upload(api_url: str, key: str, path: Path) -> tuple[dict[str, Any], float]:
    """Stream the file as multipart (httpx reads it in blocks); (file object, seconds)."""
    import httpx

    started = time.perf_counter()
    with path.open("rb") as fh:
        r = httpx.post(
            f"{api_url}/v1/files",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": (path.name, fh, "application/jsonl")},
            data={"purpose": "jobs"},
            timeout=3600,
        )
    r.raise_for_status()
    return r.json(), time.perf_counter() - started


def wait_status(client: Any, job_id: str, done: set[str], timeout: float) -> dict[str, Any]:
    """Long-poll until the job's status is in `done`."""
    deadline = time.monotonic() + timeout
    job = client.job(job_id)
    while job["status"] not in done:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']}")
        job = client.job(job_id, wait=1)
    return job


def download(api_url: str, key: str, job_id: str, out: Path) -> tuple[int, float]:
    """Stream the results to a file, counting lines; (lines, seconds)."""
    import httpx

    lines = 0
    started = time.perf_counter()
    with (
        httpx.stream(
            "GET",
            f"{api_url}/v1/jobs/{job_id}/results",
            headers={"Authorization": f"Bearer {key}"},
            timeout=3600,
        ) as r,
        out.open("wb") as fh,
    ):
        r.raise_for_status()
        for block in r.iter_raw(1 << 20):
            lines += block.count(b"\n")
            fh.write(block)
    return lines, time.perf_counter() - started


def check_results(path: Path, n: int) -> list[str]:
    """Every index once, in order, with its custom_id and an output (not timed)."""
    problems: list[str] = []
    expected = 0
    with path.open("rb") as fh:
        for raw in fh:
            row = orjson.loads(raw)
            if row["index"] != expected or row["custom_id"] != f"row-{expected}":
                problems.append(f"line {expected + 1}: index {row['index']}")
                break
            if "output" not in row:
                problems.append(f"index {expected} failed: {row.get('error')}")
                break
            expected += 1
    if expected != n and not problems:
        problems.append(f"{expected} lines for {n} items")
    return problems


CHUNK_LOG = re.compile(
    rb"chunk (\d+): (\d+) items, compute ([\d.]+)s, start ([\d.]+)s, "
    rb"decode ([\d.]+)s, encode ([\d.]+)s, record ([\d.]+)s"
)


def chunk_figures(db_url: str, job_id: str, worker_log: Path) -> dict[str, float]:
    """The worker's time on the job (first chunk start to last finish) against the model's
    compute inside it; the rest is per-chunk overhead. The worker's per-chunk log lines
    tell how long starting, encoding and recording chunks took."""
    from sqlalchemy import func, select

    from core.db import read_session
    from core.tables import Chunk

    with read_session(db_url) as s:
        first, last, compute, chunks = s.execute(
            select(
                func.min(Chunk.started_at),
                func.max(Chunk.finished_at),
                func.sum(Chunk.compute_seconds),
                func.count(),
            ).where(Chunk.job_id == job_id)
        ).one()
        ids = set(s.scalars(select(Chunk.id).where(Chunk.job_id == job_id)))
    span = float(last - first)
    start = decode = record = encode = 0.0
    for m in CHUNK_LOG.finditer(worker_log.read_bytes() if worker_log.exists() else b""):
        if int(m.group(1)) in ids:
            start += float(m.group(4))
            decode += float(m.group(5))
            encode += float(m.group(6))
            record += float(m.group(7))
    return {
        "chunks": int(chunks),
        "worker_seconds": span,
        "compute_seconds": float(compute),
        # everything on the worker's critical path that is not the model: starting chunks
        # (a transaction, decompressing inputs), Celery delivering the next message, and
        # the record of the last chunk; encoding and recording the others overlap compute
        "overhead_share": 1 - float(compute) / span if span > 0 else float("nan"),
        # of which: taking the chunk (its transaction) and decoding its inputs
        "start_database_share": start / span,
        "decode_inputs_share": decode / span,
        # what remains is Celery's delivery of the next message and the dispatcher
        "between_chunks_share": (span - float(compute) - start - decode) / span,
        # work done beside compute in the recorder thread, as shares of the same time
        "background_record_share": record / span,
        "background_encode_share": encode / span,
    }


def run_size(
    stack: Any, n: int, corpus: list[str], workdir: Path, timeout: float, ingest_only: bool
) -> dict:
    """Every figure for one file size (with ingest_only: the upload and validation, then
    the job is cancelled)."""
    path = workdir / f"input-{n}.jsonl"
    size = write_file(path, corpus, n, seed=0)
    log(f"{n:,} lines, {size / 1e6:.0f} MB: uploading")
    f, up_s = upload(stack.api_url, stack.key, path)
    assert f["lines"] == n, f
    rss_upload = peak_rss_mb(stack.api_pid)
    started = time.perf_counter()
    job = stack.client.submit_file(model="tiny-embed", input_file_id=f["id"])
    job = wait_status(
        stack.client, job["id"], {"queued", "in_progress", "completed", "failed"}, timeout
    )
    validate_s = time.perf_counter() - started
    if job["status"] == "failed":
        raise RuntimeError(f"validation failed: {job['errors']}")
    log(f"uploaded in {up_s:.1f}s, validated in {validate_s:.1f}s")
    ingest = {
        "lines": n,
        "file_mb": size / 1e6,
        "upload_seconds": up_s,
        "validation_seconds": validate_s,
        "upload_validation_lines_per_s": n / (up_s + validate_s),
        "api_peak_rss_mb_after_upload": rss_upload,
    }
    if ingest_only:
        stack.client.cancel(job["id"])
        path.unlink()
        return ingest
    job = wait_status(stack.client, job["id"], {"completed", "failed", "cancelled"}, timeout)
    run_s = time.perf_counter() - started
    log(f"job {job['status']} after {run_s:.1f}s; downloading")
    out = workdir / f"results-{n}.jsonl"
    lines, down_s = download(stack.api_url, stack.key, job["id"], out)
    problems = check_results(out, n)
    out.unlink()
    path.unlink()
    return {
        **ingest,
        "job_seconds_from_submit": run_s,
        "job_items_per_s": n / run_s,
        "download_lines": lines,
        "download_seconds": down_s,
        "download_lines_per_s": lines / down_s,
        "api_peak_rss_mb": peak_rss_mb(stack.api_pid),
        "worker_peak_rss_mb": peak_rss_mb(stack.worker_pid),
        **chunk_figures(stack.db_url, job["id"], workdir / "logs" / "worker.log"),
        "status": job["status"],
        "problems": problems,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated line counts")
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--logs", type=Path, help="keep the API's and worker's logs here")
    ap.add_argument(
        "--ingest-only",
        action="store_true",
        help="only the upload and validation of each size (the job is cancelled after)",
    )
    args = ap.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    corpus = texts(args.data_dir)
    report: dict[str, Any] = {"database": args.database_url.split("://")[0], "sizes": []}
    with tempfile.TemporaryDirectory(prefix="sluice-large-") as tmp:
        workdir = Path(tmp)
        with tiny_stack(
            workdir,
            threads=args.threads,
            max_inputs=max(sizes),
            database_url=args.database_url,
            extra_env={"SLUICE_MAX_ITEMS_PER_FILE_JOB": str(max(sizes))},
        ) as stack:
            try:
                for n in sizes:
                    figures = run_size(stack, n, corpus, workdir, args.timeout, args.ingest_only)
                    report["sizes"].append(figures)
                    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode(), flush=True)
            finally:
                if args.logs:
                    shutil.copytree(workdir / "logs", args.logs, dirs_exist_ok=True)
    largest = report["sizes"][-1]
    checks = {"upload + validation lines/s": largest["upload_validation_lines_per_s"] >= 50_000}
    if not args.ingest_only:
        checks |= {
            "API peak RSS MB": largest["api_peak_rss_mb"] < 300,
            "results download lines/s": largest["download_lines_per_s"] >= 100_000,
            "per-chunk overhead share": largest["overhead_share"] < 0.05,
        }
    report["targets"] = {k: {"target": TARGETS[k], "met": v} for k, v in checks.items()}
    print(orjson.dumps(report["targets"], option=orjson.OPT_INDENT_2).decode())
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
