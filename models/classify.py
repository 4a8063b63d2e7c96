"""The classify runner: sequence classification with labels and scores, like transformers'
text-classification pipeline (softmax, or sigmoid for multi-label models); the ranking of
labels is shared with classify_image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from core.contracts.spec import ModelSpec
from models.encoder import EncoderRunner


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
