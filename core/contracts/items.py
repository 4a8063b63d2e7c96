"""Checking one input item (its custom_id and input) against a task: shared by the API's
inline jobs and the worker's file ingest, so both accept exactly the same items; and the
one reading of a JSONL line's fields (native, or the `{id, text}` alias form) that the
file ingest and the CLI share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.contracts.params import InputShapeError, check_input, input_texts
from core.errors import shown

LINE_FIELDS = frozenset({"custom_id", "input"})
# Many datasets come as {"id", "text"} lines: each name is taken for its native field.
ALIASES = {"id": "custom_id", "text": "input"}
KNOWN_FIELDS = LINE_FIELDS | ALIASES.keys()
FORMS = 'a line holds "input" and optionally "custom_id" (or their aliases "text" and "id")'


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


def _alias_id(value: Any) -> Any:
    # Dataset ids are often numbers; a custom_id is a string (a bool is no id).
    return str(value) if type(value) is int else value


def native_item(line: dict[str, Any]) -> dict[str, Any]:
    """A JSONL line's fields as {"custom_id", "input"} (custom_id None when absent): the
    native {"custom_id"?, "input"} as it is, the alias form {"id"?, "text"} renamed (an
    integer id becomes its string); ItemInvalid naming the problem for anything else. The
    values are not checked here (check_item and check_custom_id do that)."""
    for alias, native in ALIASES.items():
        if alias in line and native in line:
            raise ItemInvalid(
                "conflicting_fields",
                f'line has both "{native}" and its alias "{alias}": keep one',
                alias,
            )
    unknown = sorted(line.keys() - KNOWN_FIELDS)
    if "input" not in line and "text" not in line:
        found = f"; it has {', '.join(repr(k) for k in unknown)}" if unknown else ""
        raise ItemInvalid("missing_input", f'line has no "input" (or its alias "text"){found}')
    if unknown:
        name = unknown[0]
        raise ItemInvalid("unknown_field", f"unknown field {shown(name)}: {FORMS}", name)
    custom_id = _alias_id(line["id"]) if "id" in line else line.get("custom_id")
    return {"custom_id": custom_id, "input": line["input"] if "input" in line else line["text"]}


def line_custom_id(line: Any, limits: ItemLimits) -> str | None:
    """The custom_id a line names (or its alias id), if it is a usable one: what an invalid
    line's failed item keeps, so its result can be matched to the input."""
    if not isinstance(line, dict):
        return None
    value = line["custom_id"] if "custom_id" in line else _alias_id(line.get("id"))
    if isinstance(value, str) and len(value) <= limits.max_custom_id_chars:
        return value
    return None


def check_line(task: str, line: dict[str, Any], limits: ItemLimits) -> tuple[str | None, Any]:
    """(custom_id, input) of one JSONL line of a file ({"custom_id"?, "input"}, or the
    {"id"?, "text"} alias form), as parsed by orjson (which refuses lone surrogates, so
    the strings are valid Unicode already)."""
    if "input" not in line or not LINE_FIELDS.issuperset(line):  # the native form is fast
        line = native_item(line)
    custom_id = line.get("custom_id")
    if custom_id is not None:
        custom_id = check_custom_id(custom_id, limits, check_unicode=False)
    return custom_id, check_item(task, line["input"], limits, check_unicode=False)
