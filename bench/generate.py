"""Generation throughput of sluice end to end on the tiny causal model, beside the in-process
runner and a loop over transformers' pipeline("text-generation") at batch_size 1 and 8, all
measured in one run on the same model, prompts and thread count.

    python bench/generate.py                   # 2,000 prompts, greedy, 16 new tokens
    python bench/generate.py --items 200 --json /tmp/generate.json

The model is the project's own seeded tiny GPT-2 (tests/tiny_models.py: 2 layers, width 32,
byte-level BPE tokenizer trained locally), built into a temporary directory with the same
training texts and seed as the test suite's `tiny-causal`, and registered in a temporary
models.yaml that the API and worker read through SLUICE_MODELS_FILE. Decoding is greedy
(temperature 0), so every measurement computes the same completions and they are compared.

In order: sluice's GenerateRunner in-process on all prompts at once (the length-sorted
token-budget loop); pipeline("text-generation") over the prompts with batch_size 1, then 8;
then one job through the API, Redis and one worker. The measurements run one after another,
never side by side, each model freed before the next loads: each one gets every core.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/generate.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402 - needs the root on sys.path
    Measurement,
    log,
    machine_info,
    ratio,
    read_results,
    sluice_stack,
    timed_job,
    use_threads,
)

MODEL = "tiny-causal"
# The registry entry the API, the worker and the in-process runner all use. max_length is the
# model's n_positions; max_batch_tokens as in the test suite's registry; chunk_size 200 (the
# tests use 50) so a chunk holds a few micro-batches of the 4,096-token budget, not one.
REGISTRY_ENTRY = {
    "task": "generate",
    "dtype": "float32",
    "max_length": 256,
    "max_batch_tokens": 4096,
    "gpu_max_batch_tokens": 65536,
    "chunk_size": 200,
}


def build_model(workdir: Path, args: argparse.Namespace) -> tuple[Path, str]:
    """Build the tiny causal model into workdir and write a models.yaml registering it.

    Importing from tests/ is deliberate: tests/tiny_models.py is the project's own seeded
    tiny-model builder, and with the test suite's training texts and seed (see its
    build_registry) the benchmarked model is the very one the tests check."""
    from tests.tiny_models import bench_texts, build_tiny_causal

    path = build_tiny_causal(workdir / MODEL, bench_texts(2000, seed=1), seed=3)
    entry = {**REGISTRY_ENTRY, "chunk_size": args.chunk_size}
    lines = ["models:", f"  {MODEL}:", f"    source: {path}"]
    lines += [f"    {k}: {v}" for k, v in entry.items()]
    return path, "\n".join(lines) + "\n"


def make_prompts(n: int, seed: int, min_chars: int, max_chars: int) -> list[str]:
    """N prompts of varied length: each draws a length from min_chars..max_chars and takes
    consecutive corpus lines (an equal mix of wordnet and fortunes) up to it, cut there.
    Most corpus lines are short (median about 80 characters), hence the joining."""
    from tests.tiny_models import bench_texts

    rng = random.Random(seed)
    pool = [" ".join(t.split()) for t in bench_texts(max(n, 2000), seed=seed)]
    pool = [t for t in pool if t]
    prompts, at = [], 0
    for _ in range(n):
        target = rng.randint(min_chars, max_chars)
        text = ""
        while len(text) < target:
            text = f"{text} {pool[at % len(pool)]}".strip()
            at += 1
        prompts.append(text[:target].rstrip())
    return prompts


def bench_runner(
    spec: Any, prompts: list[str], max_new_tokens: int, warmup: int
) -> tuple[Measurement, list[str | None], list[int]]:
    """sluice's GenerateRunner in-process on all prompts at once (the length-sorted
    token-budget loop), greedy. Returns its texts and prompt token counts too."""
    from core.contracts.params import GenerateParams
    from models.generate import GenerateRunner

    runner = GenerateRunner(spec)
    params = GenerateParams(temperature=0, max_new_tokens=max_new_tokens)
    runner.run(prompts[:warmup], params)
    started = time.perf_counter()
    results = runner.run(prompts, params)
    seconds = time.perf_counter() - started
    texts = [r.output["text"] if r.ok else None for r in results]
    completion = sum(r.usage["completion_tokens"] for r in results if r.ok and r.usage)
    prompt_tokens = [r.usage["prompt_tokens"] if r.usage else 0 for r in results]
    failed = [r.error_code for r in results if not r.ok]
    extra = {
        "failed": len(failed),
        "error_codes": sorted(set(failed)),
        "device": str(runner.device),
        "dtype": str(runner.dtype).removeprefix("torch."),
        "stopped_early": sum(r.ok and r.output["finish_reason"] == "stop" for r in results),
    }
    del runner, results
    gc.collect()
    return (
        Measurement(
            "in-process GenerateRunner", len(prompts), seconds, extra, completion_tokens=completion
        ),
        texts,
        prompt_tokens,
    )


def bench_pipeline(
    path: Path, prompts: list[str], batch_size: int, max_new_tokens: int, warmup: int
) -> tuple[Measurement, list[str]]:
    """transformers' pipeline("text-generation") over the prompts, greedy. Batching a decoder
    needs left padding and a pad token (transformers' docs: the pad token set to EOS); the
    tokenizer is set up so before the pipeline is built, so its generation defaults carry the
    pad token id. Passing the list lets the pipeline run its own loop (a DataLoader) at
    batch_size; with 1 that is one generate() call per prompt."""
    import torch
    from transformers import AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    from models.device import pick_device

    # The device sluice's runner uses (a GPU where there is one), at the same fp32.
    pipe = pipeline(
        "text-generation",
        model=str(path),
        tokenizer=tokenizer,
        device=str(pick_device()),
        dtype=torch.float32,
    )
    kw = {
        "batch_size": batch_size,
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
        "return_full_text": False,
    }
    pipe(prompts[:warmup], **kw)
    started = time.perf_counter()
    out = pipe(prompts, **kw)
    seconds = time.perf_counter() - started
    texts = [o[0]["generated_text"] for o in out]
    del pipe, out, tokenizer
    gc.collect()
    name = f"pipeline text-generation, batch_size {batch_size}"
    return Measurement(name, len(prompts), seconds, {"batch_size": batch_size}), texts


def bench_sluice(
    args: argparse.Namespace,
    prompts: list[str],
    threads: int,
    models_file: Path,
    workdir: Path,
) -> tuple[Measurement, Measurement, list[str], list[str | None]]:
    """One greedy job through API, Redis and one worker (fresh SQLite in workdir, a unique
    Redis prefix), timed from POST to completed; then a timed results download. Returns the
    texts in input order (None where an item has none) for the caller to compare."""
    params = {"temperature": 0, "max_new_tokens": args.max_new_tokens}
    items = [{"custom_id": f"p{i}", "input": p} for i, p in enumerate(prompts)]
    problems: list[str] = []
    texts: list[str | None] = [None] * len(items)
    completion = 0

    def keep(index: int, row: dict[str, Any]) -> None:
        nonlocal completion
        texts[index] = row["output"]["text"]
        completion += (row.get("usage") or {}).get("completion_tokens", 0)

    with sluice_stack(
        model=MODEL,
        models_file=models_file,
        threads=threads,
        max_inputs=len(items),
        workdir=workdir,
        logs=args.logs,
    ) as stack:
        job, seconds, submitted = timed_job(
            stack,
            model=MODEL,
            items=items,
            params=params,
            warmup=args.warmup,
            timeout=args.timeout,
            problems=problems,
        )
        download = read_results(stack, job["id"], items, keep, problems)
    e2e = Measurement(
        "sluice (API + 1 worker)",
        len(items),
        seconds,
        {
            "job_id": job["id"],
            "status": job["status"],
            "submit_seconds": submitted,
            "api_throughput": job.get("throughput"),
            "database": "sqlite",
        },
        completion_tokens=completion,
    )
    return e2e, download, problems, texts


def _matches(texts: list[str | None], reference: list[str | None]) -> int:
    """How many items have the same text in both (an item without text never matches)."""
    return sum(t is not None and t == r for t, r in zip(texts, reference, strict=True))


def report(figures: dict[str, Any], rows: list[Measurement], problems: list[str]) -> None:
    """Print the table, the ratios and the machine to stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=110)  # no wrapped table cells in a log or a pipe
    n = figures["items"]
    table = Table(
        title=f"generation throughput, {n:,} prompts, {figures['model']}, greedy, "
        f"max_new_tokens {figures['max_new_tokens']}"
    )
    table.add_column("measurement")
    table.add_column("items", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("items/s", justify="right")
    table.add_column("tokens/s", justify="right")
    table.add_column("same text as in-process", justify="right")
    for m in rows:
        unit = "lines/s" if m.name == "results download" else ""
        tps = m.tokens_per_s
        same = m.extra.get("same_text_as_in_process")
        table.add_row(
            m.name,
            f"{m.items:,}",
            f"{m.seconds:.2f}",
            f"{m.items_per_s:,.1f} {unit}".strip(),
            "" if tps is None else f"{tps:,.0f}",
            "" if same is None else f"{same:,} / {m.items:,}",
        )
    console.print(table)

    ratios = Table(title="ratios (items/s)")
    ratios.add_column("figure")
    ratios.add_column("value", justify="right")
    for name, value in figures["ratios"].items():
        ratios.add_row(name, "n/a" if value is None else f"{value:.3f}")
    console.print(ratios)

    def say(text: str) -> None:
        console.print(text, soft_wrap=True)  # long lines stay whole in a log

    m, p, e = figures["machine"], figures["prompts"], figures["registry_entry"]
    say(
        f"prompts: {p['chars_min']}..{p['chars_max']} characters (mean {p['chars_mean']:.0f}), "
        f"{p['tokens_min']}..{p['tokens_max']} tokens (mean {p['tokens_mean']:.1f}), seed "
        f"{figures['seed']}; {figures['completion_tokens']:,} completion tokens in all "
        f"({figures['stopped_early']:,} of the prompts ended at EOS before max_new_tokens); "
        "tokens/s of the pipeline rows counts the in-process runner's completion tokens "
        "(the same greedy completions where the texts match)"
    )
    say(
        f"registry entry: dtype {e['dtype']}, max_length {e['max_length']}, max_batch_tokens "
        f"{e['max_batch_tokens']}, chunk_size {e['chunk_size']}"
    )
    say(
        f"machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
        f"{m['device']}; python {m['python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}; database sqlite"
    )
    if problems:
        say("[red]sluice result check FAILED:[/] " + "; ".join(problems))
    else:
        say(
            "sluice results verified: every index once, custom ids match, no errors, every "
            "text equal to the in-process runner's"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=2_000, help="prompts")
    p.add_argument("--seed", type=int, default=0, help="prompt sampling and length seed")
    p.add_argument("--min-chars", type=int, default=20, help="shortest prompt, characters")
    p.add_argument("--max-chars", type=int, default=400, help="longest prompt, characters")
    p.add_argument("--max-new-tokens", type=int, default=16, help="completion length (greedy)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=REGISTRY_ENTRY["chunk_size"],
        help="the registry entry's chunk_size (items per worker task)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=32, help="prompts run before each timing")
    p.add_argument("--timeout", type=float, default=3600, help="seconds the job may take")
    p.add_argument("--logs", type=Path, default=None, help="keep API and worker logs here")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.items < 1:
        p.error("--items must be at least 1")
    if not 1 <= args.min_chars <= args.max_chars:
        p.error("need 1 <= --min-chars <= --max-chars")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the measurements one after another and report them as ratios."""
    args = parse_args(argv)

    from core.contracts.spec import parse_registry

    threads = use_threads(args.threads)
    prompts = make_prompts(args.items, args.seed, args.min_chars, args.max_chars)
    with tempfile.TemporaryDirectory(prefix="sluicebench-gen-") as tmp:
        workdir = Path(tmp)
        log(f"building the tiny causal model in {workdir}")
        path, models_text = build_model(workdir, args)
        models_file = workdir / "models.yaml"
        models_file.write_text(models_text)
        spec = parse_registry(models_text, origin=str(models_file))[MODEL]
        log(f"{len(prompts):,} prompts (seed {args.seed}), {threads} torch threads")

        # One at a time, each model freed before the next loads.
        log("in-process GenerateRunner.run on all prompts")
        runner, reference, prompt_tokens = bench_runner(
            spec, prompts, args.max_new_tokens, args.warmup
        )
        if runner.extra["failed"]:
            raise SystemExit(
                f"{runner.extra['failed']} prompts failed in-process "
                f"({', '.join(runner.extra['error_codes'])}); shorten --max-chars"
            )
        completion = runner.completion_tokens or 0
        pipes: dict[int, Measurement] = {}
        for batch_size in (1, 8):
            log(f"pipeline('text-generation') with batch_size {batch_size}")
            pipes[batch_size], texts = bench_pipeline(
                path, prompts, batch_size, args.max_new_tokens, args.warmup
            )
            pipes[batch_size].extra["same_text_as_in_process"] = _matches(texts, reference)
            # Same greedy completions, same token counts: tokens/s on the runner's count.
            pipes[batch_size].completion_tokens = completion
        gc.collect()  # nothing of the in-process models may compete with the worker
        log("sluice end to end")
        e2e, download, problems, got = bench_sluice(args, prompts, threads, models_file, workdir)
    same = _matches(got, reference)
    e2e.extra["same_text_as_in_process"] = same
    if same != len(prompts):
        problems.append(f"{len(prompts) - same} of {len(prompts)} texts differ from in-process")
    if e2e.completion_tokens != completion:
        problems.append(
            f"{e2e.completion_tokens} completion tokens in sluice's usage, {completion} in-process"
        )

    ratios = {
        "sluice / pipeline batch_size 1": ratio(e2e, pipes[1]),
        "sluice / pipeline batch_size 8": ratio(e2e, pipes[8]),
        "sluice / in-process runner": ratio(e2e, runner),
        "in-process runner / pipeline batch_size 1": ratio(runner, pipes[1]),
        "in-process runner / pipeline batch_size 8": ratio(runner, pipes[8]),
        "pipeline batch_size 8 / batch_size 1": ratio(pipes[8], pipes[1]),
    }
    rows = [e2e, runner, pipes[1], pipes[8], download]
    chars = [len(p) for p in prompts]
    figures: dict[str, Any] = {
        "items": len(prompts),
        "seed": args.seed,
        "model": MODEL,
        "max_new_tokens": args.max_new_tokens,
        "greedy": True,
        "items_per_s": {
            "sluice": e2e.items_per_s,
            "in_process": runner.items_per_s,
            "pipeline_bs1": pipes[1].items_per_s,
            "pipeline_bs8": pipes[8].items_per_s,
        },
        "completion_tokens_per_s": {
            "sluice": e2e.tokens_per_s,
            "in_process": runner.tokens_per_s,
            "pipeline_bs1": pipes[1].tokens_per_s,
            "pipeline_bs8": pipes[8].tokens_per_s,
        },
        "completion_tokens": completion,
        "stopped_early": runner.extra["stopped_early"],
        "seconds": {m.name: m.seconds for m in rows},
        "results_download_lines_per_s": download.items_per_s,
        "ratios": ratios,
        "same_text_as_in_process": {
            "sluice": same,
            "pipeline_bs1": pipes[1].extra["same_text_as_in_process"],
            "pipeline_bs8": pipes[8].extra["same_text_as_in_process"],
        },
        "prompts": {
            "chars_min": min(chars),
            "chars_max": max(chars),
            "chars_mean": sum(chars) / len(chars),
            "tokens_min": min(prompt_tokens),
            "tokens_max": max(prompt_tokens),
            "tokens_mean": sum(prompt_tokens) / len(prompt_tokens),
        },
        "registry_entry": {**REGISTRY_ENTRY, "chunk_size": args.chunk_size},
        "sluice": e2e.extra,
        "in_process": runner.extra,
        "machine": {**machine_info(threads), "device": runner.extra["device"]},
        "problems": problems,
    }
    report(figures, rows, problems)
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
        log(f"figures written to {args.json}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
