"""An OpenAI batch against the native job of the same inputs, in one stack: what the
OpenAI layer costs (checking request lines, translating bodies, writing the output file),
measured through the official `openai` client.

    python bench/batch.py                      # 100,000 embeddings requests, PostgreSQL
    python bench/batch.py --lines 20000 --database-url sqlite:///

Both runs embed the same texts (../shared/bench-data) with the tiny random-weight model the
tests build; the native job runs first, then the batch. Printed: each run's phases, the
end-to-end ratio batch/native, and the finalize (output file) rate.
"""

from __future__ import annotations

import argparse
import random
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
from bench.large import DATA_DIR, DEFAULT_DB, download, texts, upload, wait_status  # noqa: E402

ENDED = {"completed", "failed", "expired", "cancelled"}


def write_inputs(workdir: Path, corpus: list[str], n: int) -> tuple[Path, Path]:
    """The same n texts as native lines and as OpenAI embeddings requests."""
    rng = random.Random(0)
    picked = [corpus[rng.randrange(len(corpus))] for _ in range(n)]
    native, batch = workdir / "native.jsonl", workdir / "batch.jsonl"
    with native.open("wb") as a, batch.open("wb") as b:
        for i, text in enumerate(picked):
            a.write(orjson.dumps({"custom_id": f"r{i}", "input": text}) + b"\n")
            body = {"model": "tiny-embed", "input": text}
            line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/embeddings", "body": body}
            b.write(orjson.dumps(line) + b"\n")
    return native, batch


def run_native(stack: Any, path: Path, workdir: Path, timeout: float) -> dict[str, float]:
    """Upload, job, download: seconds of each."""
    f, up_s = upload(stack.api_url, stack.key, path)
    started = time.perf_counter()
    job = stack.client.submit_file(model="tiny-embed", input_file_id=f["id"])
    job = wait_status(stack.client, job["id"], {"completed", "failed"}, timeout)
    job_s = time.perf_counter() - started
    lines, down_s = download(stack.api_url, stack.key, job["id"], workdir / "native.out")
    return {"upload_s": up_s, "job_s": job_s, "download_s": down_s, "lines": lines}


def run_batch(stack: Any, path: Path, timeout: float) -> dict[str, float]:
    """Upload, batch (with the time of each status change, polled every 0.1 s), output."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{stack.api_url}/v1", api_key=stack.key, max_retries=0)
    started = time.perf_counter()
    with path.open("rb") as fh:
        f = client.files.create(file=fh, purpose="batch")
    up_s = time.perf_counter() - started
    started = time.perf_counter()
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    seen: dict[str, float] = {}
    while batch.status not in ENDED:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"batch still {batch.status}")
        seen.setdefault(batch.status, time.perf_counter() - started)
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    job_s = time.perf_counter() - started
    if batch.status != "completed":
        raise RuntimeError(f"batch {batch.status}: {batch.errors}")
    began = time.perf_counter()
    lines = 0
    with client.files.with_streaming_response.content(batch.output_file_id or "") as r:
        for block in r.iter_bytes(1 << 20):
            lines += block.count(b"\n")
    down_s = time.perf_counter() - began
    finalizing_from = seen.get("finalizing", job_s)
    return {
        "upload_s": up_s,
        "job_s": job_s,
        "validating_s": seen.get("in_progress", finalizing_from),
        "finalizing_s": job_s - finalizing_from,
        "download_s": down_s,
        "lines": lines,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()

    corpus = texts(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="sluice-batch-") as tmp:
        workdir = Path(tmp)
        native_path, batch_path = write_inputs(workdir, corpus, args.lines)
        with tiny_stack(
            workdir,
            threads=args.threads,
            max_inputs=args.lines,
            database_url=args.database_url,
        ) as stack:
            log(f"native job of {args.lines:,} lines")
            native = run_native(stack, native_path, workdir, args.timeout)
            log(f"native: {native}; now the batch")
            batch = run_batch(stack, batch_path, args.timeout)
    n = args.lines
    report = {
        "lines": n,
        "database": args.database_url.split("://")[0],
        "native": native,
        "batch": batch,
        "batch / native end to end (upload + job + download), time": (
            (batch["upload_s"] + batch["job_s"] + batch["download_s"])
            / (native["upload_s"] + native["job_s"] + native["download_s"])
        ),
        "batch / native job time": batch["job_s"] / native["job_s"],
        "finalize lines/s": n / batch["finalizing_s"] if batch["finalizing_s"] else None,
        "output download lines/s": batch["lines"] / batch["download_s"],
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
