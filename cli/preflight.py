"""What `submit` checks before it uploads a byte, so that a typo leaves no file behind: the
model exists, the params suit its task, and the file's first lines are inputs of that task.
The server checks everything again (and every line); these are only the early, cheap ones."""

from __future__ import annotations

import difflib
import json
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

# Lines of a file read before the upload starts, and the bytes read for them at most (a
# longer line, such as an image's, is left to the server).
CHECKED_LINES = 100
CHECKED_BYTES = 16 << 20
LINE_FORMS = '{"custom_id"?, "input"} or {"id", "text"}'


class Refused(ValueError):
    """A submission that would fail: a message, and a line saying what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def parse_params(text: str) -> dict[str, Any]:
    """--params as a JSON object."""
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise Refused(
            f"--params is not JSON: {exc}", """e.g. --params '{"dimensions": 128}'"""
        ) from None
    if not isinstance(params, dict):
        raise Refused("--params must be a JSON object", """e.g. --params '{"dimensions": 128}'""")
    return params


def find_model(models: list[Mapping[str, Any]], name: str, program: str) -> Mapping[str, Any]:
    """The model of that name among those the API serves."""
    for model in models:
        if model.get("id") == name:
            return model
    names = sorted(str(m.get("id")) for m in models)
    close = difflib.get_close_matches(name, names, n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    raise Refused(
        f"unknown model {name!r}{guess}; this API serves: {', '.join(names) or 'none'}",
        f"`{program} models` lists them with their tasks and live workers",
    )


def check_params(model: Mapping[str, Any], params: dict[str, Any]) -> None:
    """The params against the model's task and the limits /v1/models shows."""
    from pydantic import ValidationError

    from core.contracts.params import parse_params as parse_task_params

    task, name = str(model.get("task")), model.get("id")
    try:
        parsed = parse_task_params(task, params).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(
            f"--params: params.{where}: {first['msg']} (model {name} is a {task} model)"
        ) from None
    width = model.get("dimensions")
    if parsed.get("dimensions") and width and parsed["dimensions"] > width:
        raise Refused(
            f"--params: {name} gives {width} dimensions, asked for {parsed['dimensions']}"
        )
    max_length = model.get("max_length")
    if max_length and parsed.get("max_new_tokens", 0) >= max_length:
        raise Refused(f"--params: max_new_tokens: {name} takes {max_length} tokens in all")
    target = (parsed.get("explain") or {}).get("target", "top")
    labels = model.get("labels")
    if target != "top" and labels is not None and target not in labels:
        raise Refused(f"--params: explain.target: {name} has no label {target!r}")


def _as_item(obj: Any) -> Any:
    """A line in the API's shape (the CLI converts {id, text} on the way, as it uploads)."""
    if isinstance(obj, dict) and "input" not in obj and "text" in obj:
        cid = obj.get("custom_id", obj.get("id"))
        return {"custom_id": None if cid is None else str(cid), "input": obj["text"]}
    return obj


def _head(lines: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(number, bytes) of the file's first whole lines within CHECKED_BYTES."""
    budget = CHECKED_BYTES
    lineno = 0
    while budget > 0:
        raw = lines.readline(budget)
        lineno += 1
        if not raw or (len(raw) == budget and not raw.endswith(b"\n")):
            return
        budget -= len(raw)
        yield lineno, raw


def check_first_lines(
    path: Path, task: str, *, skip_invalid: bool = False, limit: int = CHECKED_LINES
) -> int:
    """Check the first `limit` non-blank lines of a JSONL(.gz) file against the task;
    returns how many were checked. JSON that does not parse is refused (the upload would
    be); so is an input the task cannot take, unless `skip_invalid` (then only a file of
    which no checked line is an input)."""
    from cli.inputs import open_lines
    from core.contracts.items import ItemInvalid, ItemLimits, check_line

    # Sizes are the server's to judge (its limits are settings): only shapes here.
    limits = ItemLimits(max_input_chars=1 << 40, max_custom_id_chars=1 << 40)
    hint = f"each line is {LINE_FORMS}; submit reads the first {limit} before it uploads"
    checked = valid = 0
    first_invalid: Refused | None = None
    try:
        with open_lines(path) as lines:
            for lineno, raw in _head(lines):
                if not raw.strip():
                    continue
                try:
                    obj = _as_item(orjson.loads(raw))
                except orjson.JSONDecodeError as exc:
                    raise Refused(f"{path}:{lineno}: not valid JSON ({exc})", hint) from None
                if not isinstance(obj, dict):
                    raise Refused(f"{path}:{lineno}: expected a JSON object", hint)
                checked += 1
                try:
                    check_line(task, obj, limits)
                    valid += 1
                except ItemInvalid as exc:
                    refused = Refused(f"{path}:{lineno}: {exc.code}: {exc.message}", hint)
                    if not skip_invalid:
                        raise refused from None
                    first_invalid = first_invalid or refused
                if checked >= limit:
                    break
    except (OSError, EOFError, zlib.error) as exc:  # a gzip file cut short or corrupt
        raise Refused(f"{path}: cannot read it: {exc}") from None
    if not checked:
        raise Refused(f"{path} has no lines", hint)
    if not valid and first_invalid is not None:
        raise first_invalid
    return checked
