"""The commands the docs show are true: every `sluice ...` line of a shell block in README.md
and docs/*.md parses with the real command-line parser, and the README's "Run it
yourself" runs as written, block by block, in an empty directory (its server blocks in
the background), ending with the results of a real job."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import typer.main

from cli.main import app
from cli.processes import free_port, stop, wait_ready
from tests.services import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SKIP_MARK = "<!-- doc-test: skip"
# What separates one shell command from the next (or redirects it).
OPERATOR_CHARS = set("();<>|&")
# The command itself: `sluice`, or a path to it (a URL ending in /sluice is not one).
COMMAND = re.compile(r"(?:[\w.-]+/)*sluice")


def shell_blocks(text: str) -> list[tuple[str, bool]]:
    """(code, skipped) of each shell block, in order; skipped when a SKIP_MARK comment
    stands right before it."""
    blocks = []
    for match in FENCE.finditer(text):
        if match[1] in SHELL_LANGUAGES:
            before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
            blocks.append((match[2], before.startswith(SKIP_MARK)))
    return blocks


def sluice_commands(code: str) -> list[list[str]]:
    """The argument lists of the `sluice` commands (also `.venv/bin/sluice`, in `$(...)`,
    after `docker compose exec api`) in a block of shell, each up to the end of the shell
    command it is part of; a word inside quotes or a comment is no command."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        for at, word in enumerate(words):
            if COMMAND.fullmatch(word):
                rest = words[at + 1 :]
                ends = [i for i, w in enumerate(rest) if set(w) <= OPERATOR_CHARS]
                found.append(rest[: ends[0]] if ends else rest)
    return found


def parse(args: list[str]) -> None:
    """Parse a command line as `sluice` would, down to its subcommand, without running it
    (raises the parser's UsageError on a mistake)."""
    command = typer.main.get_command(app)
    ctx = command.make_context("sluice", list(args))
    while hasattr(command, "resolve_command"):
        # the subcommand and its arguments (typer's click keeps the first as private)
        protected = getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])
        rest = [*protected, *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)


def test_every_sluice_command_in_the_docs_parses():
    seen: list[tuple[str, list[str]]] = []
    for doc in DOCS:
        for code, _ in shell_blocks(doc.read_text()):
            seen += [(doc.name, args) for args in sluice_commands(code)]
    problems = []
    for doc, args in seen:
        try:
            parse(args)
        except Exception as exc:
            problems.append(f"{doc}: sluice {shlex.join(args)}: {exc}")
    assert problems == []
    names = {" ".join(args[:2]) if args[0] in ("keys", "tenants") else args[0] for _, args in seen}
    expected = {"migrate", "api", "worker", "workers", "keys create", "submit", "status"}
    assert expected | {"results", "demo", "tenants webhook"} <= names
    assert {doc for doc, _ in seen} == {"README.md", "deploy.md"}


def test_a_wrong_command_would_be_caught():
    assert sluice_commands("JOB=$(.venv/bin/sluice submit f.jsonl --model m --wait) # x") == [
        ["submit", "f.jsonl", "--model", "m", "--wait"]
    ]
    for wrong in (["submit", "f.jsonl", "--modle", "m"], ["result", "j"], ["workers"]):
        with pytest.raises(Exception, match=r"(?i)no such|missing"):
            parse(wrong)


def quick_start() -> list[tuple[str, bool]]:
    """The shell blocks of the README's "Run it yourself" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Run it yourself\n", 1)[1].split("\n## ", 1)[0]
    return shell_blocks(section)


def _server(code: str) -> str | None:
    match = re.fullmatch(r"\.venv/bin/sluice (api|worker)\b[^\n]*", code.strip())
    return match[1] if match else None


@pytest.mark.e2e
def test_the_quick_start_runs_as_written(tmp_path: Path, redis_prefix: str):
    blocks = quick_start()
    assert [_server(code) for code, skipped in blocks if not skipped].count(None) >= 2
    assert {_server(code) for code, _ in blocks} >= {"api", "worker"}
    work = tmp_path / "quickstart"
    (work / ".venv" / "bin").mkdir(parents=True)
    shim = work / ".venv" / "bin" / "sluice"  # the installed command, on this checkout
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cli.main "$@"\n')
    shim.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "client"), env.get("PYTHONPATH", "")]),
        SLUICE_REDIS_URL=REDIS_URL,
        SLUICE_REDIS_PREFIX=redis_prefix,
        SLUICE_API_PORT=str(port),
        SLUICE_API_URL=f"http://127.0.0.1:{port}",
        TOKENIZERS_PARALLELISM="false",
    )
    servers: list[subprocess.Popen] = []
    logs: list[Path] = []
    done: subprocess.CompletedProcess[str] | None = None
    try:
        for code, skipped in blocks:
            if skipped:
                continue
            kind = _server(code)
            if kind is not None:
                log = work / f"{kind}.log"
                logs.append(log)
                servers.append(
                    subprocess.Popen(
                        ["bash", "-c", code],
                        cwd=work,
                        env=env,
                        stdout=log.open("wb"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                if kind == "api":
                    try:
                        wait_ready(env["SLUICE_API_URL"], servers[-1], timeout=120)
                    except (RuntimeError, TimeoutError) as exc:
                        raise AssertionError(log.read_text()) from exc
                continue
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            server_logs = "\n".join(p.read_text()[-3000:] for p in logs)
            assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}\n{server_logs}"
    finally:
        for proc in servers:
            stop(proc)
    assert done is not None
    assert "completed: 2 ok, 0 failed" in done.stderr  # submit --wait's last word
    assert "all-minilm-l6-v2" in done.stdout and "completed" in done.stdout  # status, jobs
    lines = [orjson.loads(x) for x in (work / "results.jsonl").read_bytes().splitlines()]
    assert [(x["index"], x["custom_id"]) for x in lines] == [(0, "a"), (1, "b")]
    assert all(len(x["output"]) == 384 for x in lines)  # all-MiniLM-L6-v2's embeddings
