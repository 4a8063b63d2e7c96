"""pandas and pyarrow, imported only when used: DataFrames and Arrow tables as inputs (read
a slice at a time), and Parquet results read into a table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

ROWS_PER_SLICE = 10_000
INPUT_COLUMN = "input"
CUSTOM_ID_COLUMN = "custom_id"


def _top_module(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


def is_dataframe(obj: Any) -> bool:
    """Whether obj is a pandas DataFrame (without importing pandas)."""
    return _top_module(obj) == "pandas" and hasattr(obj, "columns") and hasattr(obj, "iloc")


def is_arrow_table(obj: Any) -> bool:
    """Whether obj is a pyarrow Table or RecordBatch (without importing pyarrow)."""
    return _top_module(obj) == "pyarrow" and hasattr(obj, "column_names") and hasattr(obj, "column")


def _input_column(names: list[str]) -> str:
    """The column holding the inputs: `input`, or the only column there is."""
    if INPUT_COLUMN in names:
        return INPUT_COLUMN
    data = [n for n in names if n != CUSTOM_ID_COLUMN]
    if len(data) == 1:
        return data[0]
    raise ValueError(
        f"a table of inputs needs an {INPUT_COLUMN!r} column (and optionally "
        f"{CUSTOM_ID_COLUMN!r}), or a single column; it has {names}"
    )


def _items(inputs: list[Any], custom_ids: list[Any] | None) -> Iterator[dict[str, Any]]:
    for position, value in enumerate(inputs):
        item: dict[str, Any] = {"input": value}
        cid = custom_ids[position] if custom_ids is not None else None
        if cid is not None:
            item["custom_id"] = cid if isinstance(cid, str) else str(cid)
        yield item


def dataframe_items(frame: Any) -> Iterator[dict[str, Any]]:
    """Items of a DataFrame's rows in order, converted a slice of rows at a time."""
    names = [str(c) for c in frame.columns]
    column = frame.columns[names.index(_input_column(names))]
    has_ids = CUSTOM_ID_COLUMN in names
    for start in range(0, len(frame), ROWS_PER_SLICE):
        rows = frame.iloc[start : start + ROWS_PER_SLICE]
        ids = rows[CUSTOM_ID_COLUMN].tolist() if has_ids else None
        yield from _items(rows[column].tolist(), ids)


def arrow_items(table: Any) -> Iterator[dict[str, Any]]:
    """Items of an Arrow table's rows in order, converted a record batch at a time."""
    names = list(table.column_names)
    column = _input_column(names)
    batches = table.to_batches(ROWS_PER_SLICE) if hasattr(table, "to_batches") else [table]
    for batch in batches:
        ids = batch.column(CUSTOM_ID_COLUMN).to_pylist() if CUSTOM_ID_COLUMN in names else None
        yield from _items(batch.column(column).to_pylist(), ids)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError(
            "to_arrow() and to_pandas() need pyarrow: pip install 'sluice-client[pandas]'"
        ) from exc
    return pyarrow.parquet


def read_parquet(source: IO[bytes]) -> Any:
    """A pyarrow Table of a Parquet file (opened, binary)."""
    return _pyarrow_parquet().read_table(source)


def table_to_pandas(table: Any) -> Any:
    """The table as a pandas DataFrame (pandas must be installed)."""
    try:
        import pandas  # noqa: F401  # the clearer message, rather than pyarrow's
    except ImportError as exc:
        raise ImportError("to_pandas() needs pandas: pip install 'sluice-client[pandas]'") from exc
    return table.to_pandas()
