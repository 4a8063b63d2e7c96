"""Result downloads: a job's JSONL result lines re-encoded as JSONL, CSV or Parquet,
streamed block by block in input order, holding at most one block or row group."""

from __future__ import annotations

import csv
import io
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from api.explanation_columns import (
    EXPLAINED_LAYOUTS,
    SCALAR_COLUMNS,
    explained_layout,
    explanation_values,
    parquet_fields,
)
from core.jsonl import LineSplitter
from core.result_lines import is_failure, parse_result_line, result_error

ResultFormat = Literal["jsonl", "csv", "parquet"]


class FormatInfo(NamedTuple):
    """How a download format is served: its media type and file extension."""

    media_type: str
    extension: str


FORMATS: dict[str, FormatInfo] = {
    "jsonl": FormatInfo("application/x-ndjson", "jsonl"),
    "csv": FormatInfo("text/csv", "csv"),
    "parquet": FormatInfo("application/vnd.apache.parquet", "parquet"),
}
# The columns a task's results take: classify_image's outputs are classify's.
LAYOUTS = {
    "embed": "embed",
    "classify": "classify",
    "classify_image": "classify",
    "generate": "generate",
}
TASKS = tuple(LAYOUTS)
ROW_GROUP_ROWS = 8192
# Long texts and wide embeddings close a row group early: 32 MiB of result lines at most.
ROW_GROUP_BYTES = 1 << 25

CSV_TASK_COLUMNS = {
    "embed": ("embedding",),
    "classify": ("label", "score", "labels", "scores"),
    "generate": ("text", "finish_reason"),
}
for _layout in EXPLAINED_LAYOUTS.values():  # explained: the scalars, not the attributions
    CSV_TASK_COLUMNS[_layout] = (*CSV_TASK_COLUMNS["classify"], *SCALAR_COLUMNS)
TAIL_COLUMNS = ("prompt_tokens", "completion_tokens", "truncated", "error_code", "error_message")
TAIL_TYPES = (pa.int32(), pa.int32(), pa.bool_(), pa.string(), pa.string())


def _line_batches(blocks: Iterable[bytes], only_failed: bool) -> Iterator[list[bytes]]:
    """Each block's complete lines, without newlines; a line split across blocks is joined."""
    splitter = LineSplitter(max_line_bytes=sys.maxsize)  # result lines are ours: no limit

    def keep(lines: Iterable[tuple[int, bytes]]) -> list[bytes]:
        return [p for _, p in lines if p.strip() and (not only_failed or is_failure(p))]

    for block in blocks:
        yield keep(splitter.feed(block))
    last = keep(splitter.finish())
    if last:
        yield last


def _task_values(task: str, output: Any, explanation: Any = None) -> tuple[Any, ...]:
    """An item's task columns as Parquet stores them (all None when the item failed)."""
    if task == "embed":
        return (output,)
    if task != "generate":  # classify's, then an explained layout's explanation
        labels: tuple[list[str] | None, list[Any] | None] = (None, None)
        if output is not None:
            labels = [str(x["label"]) for x in output], [x["score"] for x in output]
        extra = () if task == "classify" else explanation_values(task, explanation)
        return (*labels, *extra)
    return (None, None) if output is None else (output.get("text"), output.get("finish_reason"))


@dataclass(frozen=True, slots=True)
class _Row:
    """One result line, parsed: its position, task columns and common trailing columns."""

    index: int
    custom_id: str | None
    values: tuple[Any, ...]
    tail: tuple[Any, ...]


def _parse(line: bytes, task: str) -> _Row:
    """A result line as a row; a failure has null outputs, usage and truncation."""
    item = parse_result_line(line)
    error = result_error(item)
    if error is not None:
        values = _task_values(task, None)
        tail: tuple[Any, ...] = (None, None, None, error.get("code"), error.get("message"))
    else:
        usage = item.get("usage") or {}
        values = _task_values(task, item.get("output"), item.get("explanation"))
        tokens = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
        tail = (*tokens, bool(item.get("truncated")), None, None)
    return _Row(item["index"], item.get("custom_id"), values, tail)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV
# injection list): such a text cell gets a leading apostrophe, which shows it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Control characters other than tab, line feed and carriage return (NUL among them) have
# no place in a spreadsheet cell and trip some readers: CSV drops them.
CONTROL_CHARACTERS = dict.fromkeys([c for c in range(32) if chr(c) not in "\t\n\r"] + [127], None)


def csv_text(value: str) -> str:
    """A text cell made safe to open in a spreadsheet: control characters dropped, and a
    `'` before a leading =, +, -, @, tab or carriage return."""
    value = value.translate(CONTROL_CHARACTERS)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_cells(task: str, row: _Row) -> list[Any]:
    """One CSV record: nested values as JSON text, booleans as true/false, nulls empty,
    text cells made formula-safe (csv_text)."""
    if task == "embed":
        middle: list[Any] = [_json(row.values[0])]
    elif task != "generate":  # classify, or explained (its scalars; CSV drops the rest)
        labels, scores = row.values[:2]
        top = [labels[0], scores[0]] if labels else [None, None]
        middle = [*top, _json(labels), _json(scores), *row.values[2:5]]
    else:
        middle = list(row.values)
    truncated = row.tail[2]
    tail = [*row.tail[:2], None if truncated is None else str(truncated).lower(), *row.tail[3:]]
    cells = [row.index, row.custom_id, *middle, *tail]
    return [csv_text(c) if type(c) is str else c for c in cells]


def _encode_csv(batches: Iterator[list[bytes]], task: str) -> Iterator[bytes]:
    """A header, then one record per item; one yield per block."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(("index", "custom_id", *CSV_TASK_COLUMNS[task], *TAIL_COLUMNS))
    for lines in batches:
        writer.writerows(_csv_cells(task, _parse(line, task)) for line in lines)
        if buf.tell():
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


def parquet_schema(task: str, dimensions: int | None) -> pa.Schema:
    """The Parquet schema of a task's results; embeddings are fixed-size lists when the
    width is known, else (no width given, none seen before the first row group) lists."""
    vector = pa.list_(pa.float32(), dimensions) if dimensions else pa.list_(pa.float32())
    labels = [("labels", pa.list_(pa.string())), ("scores", pa.list_(pa.float32()))]
    middle = {
        "embed": [("embedding", vector)],
        "classify": labels,
        "generate": [("text", pa.string()), ("finish_reason", pa.string())],
        **{layout: labels + parquet_fields(layout) for layout in EXPLAINED_LAYOUTS.values()},
    }[task]
    head = [pa.field("index", pa.int64(), nullable=False), pa.field("custom_id", pa.string())]
    tail = [pa.field(name, kind) for name, kind in zip(TAIL_COLUMNS, TAIL_TYPES, strict=True)]
    return pa.schema([*head, *(pa.field(name, kind) for name, kind in middle), *tail])


class _Drain(io.RawIOBase):
    """A write-only file that hands over what was written since the last take()."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        self.position += len(self.parts[-1])
        return len(self.parts[-1])

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class _RowGroup:
    """One row group being filled: embeddings packed as float32, other columns as lists."""

    def __init__(self, task: str) -> None:
        self.embed = task == "embed"
        self.index: list[int] = []
        self.custom_id: list[str | None] = []
        self.values: list[list[Any]] = [[] for _ in _task_values(task, None)]
        self.tail: list[list[Any]] = [[] for _ in TAIL_COLUMNS]
        self.vectors = array("f")
        self.slots: list[int | None] = []  # each row's vector number; None where it failed
        self.n_vectors = 0

    def __len__(self) -> int:
        return len(self.index)

    def add(self, row: _Row) -> None:
        """Append one row."""
        self.index.append(row.index)
        self.custom_id.append(row.custom_id)
        for column, value in zip(self.tail, row.tail, strict=True):
            column.append(value)
        if not self.embed:
            for column, value in zip(self.values, row.values, strict=True):
                column.append(value)
            return
        vector = row.values[0]
        if vector is None:
            self.slots.append(None)
            return
        start = len(self.vectors)
        try:
            self.vectors.extend(vector)
        except TypeError:  # orjson writes NaN as null
            del self.vectors[start:]
            self.vectors.extend(float("nan") if v is None else v for v in vector)
        self.slots.append(self.n_vectors)
        self.n_vectors += 1

    def _embeddings(self, vector_type: pa.DataType) -> pa.Array:
        if not self.n_vectors:
            return pa.nulls(len(self.slots), vector_type)
        buffers = [None, pa.py_buffer(self.vectors)]
        flat = pa.Array.from_buffers(pa.float32(), len(self.vectors), buffers)
        if pa.types.is_fixed_size_list(vector_type):
            dense = pa.FixedSizeListArray.from_arrays(flat, type=vector_type)
        else:
            step = len(self.vectors) // self.n_vectors
            offsets = pa.array(range(0, len(self.vectors) + 1, step), pa.int32())
            dense = pa.ListArray.from_arrays(offsets, flat, type=vector_type)
        if self.n_vectors < len(self.slots):  # a null slot takes a null row
            dense = dense.take(pa.array(self.slots, pa.int32()))
        return dense

    def write_to(self, writer: pq.ParquetWriter) -> None:
        """Write the rows as one row group of the writer's schema."""
        fields = list(writer.schema)
        middle_fields = fields[2 : 2 + len(self.values)]
        if self.embed:
            middle = [self._embeddings(middle_fields[0].type)]
        else:
            middle = [pa.array(v, f.type) for v, f in zip(self.values, middle_fields, strict=True)]
        tail_fields = fields[-len(TAIL_COLUMNS) :]
        tail = [pa.array(v, f.type) for v, f in zip(self.tail, tail_fields, strict=True)]
        head = [pa.array(self.index, pa.int64()), pa.array(self.custom_id, pa.string())]
        table = pa.Table.from_arrays([*head, *middle, *tail], schema=writer.schema)
        writer.write_table(table, row_group_size=len(self))


def _open_writer(sink: _Drain, task: str, dimensions: int | None) -> pq.ParquetWriter:
    """A Parquet writer; only flat columns get dictionaries and statistics."""
    schema = parquet_schema(task, dimensions)
    flat = [f.name for f in schema if not pa.types.is_nested(f.type)]
    return pq.ParquetWriter(
        sink, schema, compression="zstd", use_dictionary=flat, write_statistics=flat
    )


def _encode_parquet(
    batches: Iterator[list[bytes]], task: str, dimensions: int | None, row_group_rows: int
) -> Iterator[bytes]:
    """Row groups written as they fill, each drained at once; the footer at the end.

    The schema is fixed when the first row group is written: without a given width, the
    embeddings' width is that of the first vector seen by then.
    """
    sink = _Drain()
    writer: pq.ParquetWriter | None = None
    group, size = _RowGroup(task), 0
    for lines in batches:
        for line in lines:
            row, size = _parse(line, task), size + len(line)
            vector = row.values[0] if group.embed else None
            if vector is not None:
                dimensions = dimensions or len(vector)
                if len(vector) != dimensions:
                    raise ValueError(f"item {row.index}: {len(vector)} values, not {dimensions}")
            group.add(row)
            if len(group) >= row_group_rows or size >= ROW_GROUP_BYTES:
                writer = writer or _open_writer(sink, task, dimensions)
                group.write_to(writer)
                group, size = _RowGroup(task), 0
                yield sink.take()
    writer = writer or _open_writer(sink, task, dimensions)
    if len(group):
        group.write_to(writer)
    writer.close()
    yield sink.take()


def encode_results(
    blocks: Iterable[bytes],
    *,
    fmt: str,
    task: str,
    dimensions: int | None = None,
    only_failed: bool = False,
    row_group_rows: int = ROW_GROUP_ROWS,
    explained: bool = False,
) -> Iterator[bytes]:
    """Result-line blocks (as stream_results yields them) encoded in `fmt`, in order;
    `explained` (the job asked for explanations) adds their columns."""
    if fmt not in FORMATS or task not in TASKS:
        raise ValueError(f"unknown result format {fmt!r} or task {task!r}")
    task = explained_layout(task, explained) or LAYOUTS[task]
    if fmt == "jsonl" and not only_failed:
        return iter(blocks)
    batches = _line_batches(blocks, only_failed)
    if fmt == "jsonl":
        return (b"".join(line + b"\n" for line in lines) for lines in batches if lines)
    if fmt == "csv":
        return _encode_csv(batches, task)
    return _encode_parquet(batches, task, dimensions, row_group_rows)
