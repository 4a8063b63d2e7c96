"""The embed runner: mean pooling + L2 normalisation, as sentence-transformers computes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.contracts.spec import ModelSpec
from models.encoder import EncoderRunner


class EmbedRunner(EncoderRunner):
    """Embeds texts: mean of the last hidden states over real tokens, optionally cut to
    `dimensions` and normalised."""

    task = "embed"

    def __init__(self, spec: ModelSpec, device: torch.device | None = None) -> None:
        from transformers import AutoModel

        super().__init__(spec, AutoModel, device)
        self.dimension = int(self.config.hidden_size)

    def forward(self, batch: dict[str, torch.Tensor], params: Any) -> list[np.ndarray]:
        """One float32 vector per row."""
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(torch.float32)
        pooled = (hidden.to(torch.float32) * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if params.dimensions:
            pooled = pooled[:, : params.dimensions]
        if params.normalize:
            pooled = F.normalize(pooled, p=2, dim=1)
        return list(pooled.cpu().numpy())
