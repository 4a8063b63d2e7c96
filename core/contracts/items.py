"""Checking one input item (its custom_id and input) against a task: shared by the API's
inline jobs and the worker's file ingest, so both accept exactly the same items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.contracts.params import InputShapeError, check_input, input_texts
from core.errors import shown

LINE_FIELDS = frozenset({"custom_id", "input"})


class ItemInvalid(ValueError):
    """An item that cannot run: a machine-readable code and a message naming the field."""

    def __init__(self, code: str, message: str, field: str = "input") -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass(frozen=True)
class ItemLimits:
    """Size limits on one item."""

    max_input_chars: int
    max_custom_id_chars: int


def _valid_unicode(value: str) -> bool:
    # JSON's \ud800 escapes can smuggle in halves of surrogate pairs, which nothing
    # downstream can encode.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_custom_id(custom_id: Any, limits: ItemLimits, check_unicode: bool = True) -> str | None:
    """The custom_id, if it is absent or a valid string within the limit."""
    if custom_id is None:
        return None
    if not isinstance(custom_id, str):
        raise ItemInvalid("invalid_custom_id", "custom_id must be a string", "custom_id")
    if check_unicode and not _valid_unicode(custom_id):
        raise ItemInvalid("invalid_input", "custom_id is not valid Unicode", "custom_id")
    if len(custom_id) > limits.max_custom_id_chars:
        raise ItemInvalid(
            "invalid_input",
            f"custom_id is longer than {limits.max_custom_id_chars} characters",
            "custom_id",
        )
    return custom_id


def check_item(task: str, value: Any, limits: ItemLimits, check_unicode: bool = True) -> Any:
    """The input in the runner's shape, if it suits the task and the limits."""
    if task == "classify_image":
        # An image's bytes and pixels are checked when the worker decodes it: a bad one
        # fails alone. Its text is bounded by the request body or the file's line limit.
        try:
            return check_input(task, value)
        except InputShapeError as exc:
            raise ItemInvalid("invalid_input", f"input {exc}") from None
    if type(value) is str and task != "generate":  # the common case, a million times a file
        if len(value) > limits.max_input_chars:
            raise ItemInvalid(
                "input_too_large",
                f"input has {len(value)} characters; at most {limits.max_input_chars}",
            )
        if check_unicode and not _valid_unicode(value):
            raise ItemInvalid("invalid_input", "input is not valid Unicode")
        return value
    try:
        shaped = check_input(task, value)
    except InputShapeError as exc:
        raise ItemInvalid("invalid_input", f"input {exc}") from None
    texts = input_texts(shaped)
    size = sum(len(t) for t in texts)
    if size > limits.max_input_chars:
        raise ItemInvalid(
            "input_too_large", f"input has {size} characters; at most {limits.max_input_chars}"
        )
    if check_unicode and not all(_valid_unicode(t) for t in texts):
        raise ItemInvalid("invalid_input", "input is not valid Unicode")
    return shaped


def check_line(task: str, line: dict[str, Any], limits: ItemLimits) -> tuple[str | None, Any]:
    """(custom_id, input) of one native JSONL line: {"custom_id"?, "input"}, as parsed by
    orjson (which refuses lone surrogates, so the strings are valid Unicode already)."""
    if not LINE_FIELDS.issuperset(line):
        name = sorted(line.keys() - LINE_FIELDS)[0]
        raise ItemInvalid("unknown_field", f"unknown field {shown(name)}", name)
    if "input" not in line:
        raise ItemInvalid("missing_input", 'line has no "input"')
    custom_id = line.get("custom_id")
    if custom_id is not None:
        custom_id = check_custom_id(custom_id, limits, check_unicode=False)
    return custom_id, check_item(task, line["input"], limits, check_unicode=False)
