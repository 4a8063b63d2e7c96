"""The classify runner: sequence classification with labels and scores, like transformers'
text-classification pipeline (softmax, or sigmoid for multi-label models); the ranking of
labels is shared with classify_image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from core.contracts.spec import ModelSpec
from models.encoder import EncoderRunner
from models.explain_text import explain_texts
from models.integrated_gradients import freeze
from models.results import ItemResult


class ClassifyRunner(EncoderRunner):
    """Scores each input (a text or a text pair) against the model's labels."""

    task = "classify"

    def __init__(self, spec: ModelSpec, device: torch.device | None = None) -> None:
        from transformers import AutoModelForSequenceClassification

        super().__init__(spec, AutoModelForSequenceClassification, device)
        n = int(self.config.num_labels)
        id2label = getattr(self.config, "id2label", None) or {}
        self.labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(n)]
        self.multi_label = (
            getattr(self.config, "problem_type", None) == "multi_label_classification"
        )
        freeze(self.model)

    def cost_factor(self, params: Any) -> int:
        """Passes per item: an explanation's interpolation steps and its path's two ends
        (at least 3), else 1."""
        explain = getattr(params, "explain", None)
        return 1 if explain is None else int(explain.steps) + 2

    def forward_encoded(self, encodings: Sequence[dict[str, list[Any]]], params: Any) -> list[Any]:
        """Labels per row; with params.explain, each with its explanation."""
        if params.explain is None:
            return super().forward_encoded(encodings, params)
        if any("offsets" not in enc for enc in encodings):
            message = "explanations need a fast (Rust) tokenizer, for token offsets"
            return [ItemResult(error_code="explain_unsupported", error_message=message)] * len(
                encodings
            )
        if params.explain.target not in ("top", *self.labels):
            message = f"{self.spec.name} has no label {params.explain.target!r}"
            return [ItemResult(error_code="invalid_params", error_message=message)] * len(encodings)
        logits, explanations = explain_texts(
            self.model,
            self.tensors(encodings),
            encodings,
            params.explain,
            self.labels,
            self.pad_id,
            self.explain_executor,
        )
        outputs = ranked_labels(logits, self.labels, params.top_k, self.multi_label)
        return [
            ItemResult(output=out, explanation=why)
            for out, why in zip(outputs, explanations, strict=True)
        ]

    def forward(self, batch: dict[str, torch.Tensor], params: Any) -> list[Any]:
        """Top-k labels with scores per row, best first."""
        logits = self.model(**batch).logits.to(torch.float32)
        return ranked_labels(logits, self.labels, params.top_k, self.multi_label)


def ranked_labels(
    logits: torch.Tensor, labels: Sequence[str], top_k: int | str, multi_label: bool
) -> list[list[dict[str, Any]]]:
    """Per row, the top_k (or "all") labels with their scores, best first: softmax over
    the logits, or sigmoid for a multi-label model (as transformers' pipelines score)."""
    scores = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
    k = len(labels) if top_k == "all" else min(int(top_k), len(labels))
    top = torch.topk(scores, k, dim=-1)
    return [
        [{"label": labels[i], "score": float(s)} for s, i in zip(vals, idx, strict=True)]
        for vals, idx in zip(top.values.tolist(), top.indices.tolist(), strict=True)
    ]
