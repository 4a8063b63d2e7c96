"""CSV downloads are safe to open in a spreadsheet: a text cell that a spreadsheet would
run as a formula is prefixed with `'` (OWASP's advice), control characters are dropped,
and numbers stay numbers. JSONL keeps every character as the model wrote it."""

from __future__ import annotations

import csv
import io

import orjson
import pytest

from api.result_formats import csv_text, encode_results
from core.result_lines import error_line, result_line

DANGEROUS = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tlead", "\rlead", '=HYPERLINK("x")']


def _rows(lines: list[bytes], task: str) -> list[dict[str, str]]:
    data = b"".join(encode_results([b"".join(x + b"\n" for x in lines)], fmt="csv", task=task))
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


@pytest.mark.parametrize("text", DANGEROUS)
def test_formula_cells_are_prefixed_in_every_text_column(text):
    lines = [
        result_line(0, text, {"text": text, "finish_reason": text}),
        error_line(1, text, text, text),
    ]
    rows = _rows(lines, "generate")
    for column in ("custom_id", "text", "finish_reason"):
        assert rows[0][column] == "'" + text
    for column in ("custom_id", "error_code", "error_message"):
        assert rows[1][column] == "'" + text


def test_classify_labels_are_prefixed_and_scores_stay_numbers():
    out = [{"label": "=cmd", "score": 0.5}, {"label": "-neg", "score": -0.25}]
    (row,) = _rows([result_line(0, "c0", out)], "classify")
    assert row["label"] == "'=cmd"
    assert row["score"] == "0.5"
    assert orjson.loads(row["labels"]) == ["=cmd", "-neg"]  # JSON text starts with [
    assert orjson.loads(row["scores"]) == [0.5, -0.25]


def test_nul_and_control_characters_are_dropped_but_newlines_and_tabs_kept():
    text = "a\x00b\x01c\x1bd\x7fe\tf\ng\rh"
    (row,) = _rows([result_line(0, "c\x00id", {"text": text, "finish_reason": "stop"})], "generate")
    assert row["custom_id"] == "cid"
    assert row["text"] == "abcde\tf\ng\rh"
    assert "\x00" not in row["text"]


def test_a_control_character_cannot_hide_a_formula():
    assert csv_text("\x00=1+2") == "'=1+2"
    assert csv_text("\x01\x02@x") == "'@x"


@pytest.mark.parametrize("text", ["plain", "", "1+1", "a=b", "'quoted"])
def test_harmless_text_is_unchanged(text):
    assert csv_text(text) == text


def test_jsonl_keeps_the_text_as_written():
    line = result_line(0, "=c", {"text": "=1+2\x00", "finish_reason": "stop"})
    data = b"".join(encode_results([line + b"\n"], fmt="jsonl", task="generate"))
    assert orjson.loads(data)["output"]["text"] == "=1+2\x00"
