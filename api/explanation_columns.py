"""The columns of explained classifications in CSV and Parquet downloads: a job that asked
for `params.explain` gets its labels and scores as usual, then the explanation's target,
sum and delta; Parquet also holds the attributions (tokens for text, the grid for images),
typed, while CSV leaves them out (a spreadsheet cell is no place for a 14 x 14 grid: the
JSONL and Parquet results carry them)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

# The layout of an explained job's results, by task.
EXPLAINED_LAYOUTS = {"classify": "explained_text", "classify_image": "explained_image"}
SCALAR_COLUMNS = ("explain_target", "explain_sum", "explain_delta")
SCALAR_TYPES = (pa.string(), pa.float64(), pa.float64())
TOKEN = pa.struct(
    [
        ("token", pa.string()),
        ("segment", pa.int8()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("score", pa.float32()),
    ]
)
# Per layout: the column of attributions (Parquet only), its type and the key it comes from.
ATTRIBUTIONS = {
    "explained_text": ("explain_tokens", pa.list_(TOKEN), "tokens"),
    "explained_image": ("explain_grid", pa.list_(pa.list_(pa.float32())), "grid"),
}


def explained_layout(task: str, explained: bool) -> str | None:
    """The layout of a task's explained results, or None (a plain job, or a task that has
    no explanations)."""
    return EXPLAINED_LAYOUTS.get(task) if explained else None


def parquet_fields(layout: str) -> list[tuple[str, pa.DataType]]:
    """The explanation's Parquet columns, after the labels and scores."""
    name, kind, _ = ATTRIBUTIONS[layout]
    return [*zip(SCALAR_COLUMNS, SCALAR_TYPES, strict=True), (name, kind)]


def explanation_values(layout: str, explanation: Any) -> tuple[Any, ...]:
    """An item's explanation columns: target, sum, delta and attributions (all None for a
    failed item or one without an explanation)."""
    if not isinstance(explanation, dict):
        return (None, None, None, None)
    key = ATTRIBUTIONS[layout][2]
    return tuple(explanation.get(k) for k in ("target", "sum", "delta", key))
