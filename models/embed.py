"""The embed runner: mean pooling + L2 normalisation, as sentence-transformers computes it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from models.batching import IsolatingExecutor
from models.device import pick_device, pick_dtype
from models.params import EmbedParams
from models.planner import plan_batches
from models.results import Cancelled, ItemResult
from models.spec import ModelSpec


class EmbedRunner:
    """Loads an encoder once and embeds lists of texts in token-budgeted micro-batches."""

    task = "embed"

    def __init__(self, spec: ModelSpec, device: torch.device | None = None) -> None:
        self.spec = spec
        self.device = device or pick_device()
        self.dtype = pick_dtype(spec.dtype, self.device)
        path = spec.resolved_source()
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision)
        model = AutoModel.from_pretrained(path, revision=spec.revision, dtype=self.dtype)
        self.model = model.to(self.device).eval()
        limit = getattr(model.config, "max_position_embeddings", spec.max_length)
        self.max_length = min(spec.max_length, limit)
        self.dimension = int(model.config.hidden_size)
        self.pad_id = self.tokenizer.pad_token_id or 0
        # BERT-likes take segment ids; MPNet, DistilBERT and others raise if given them.
        self.takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self.executor = IsolatingExecutor(spec.max_batch_tokens)

    def tokenize(self, texts: Sequence[str], truncate: bool) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text (cut to max_length when truncating) and whether each was too long."""
        ids: list[list[int]] = self.tokenizer(
            list(texts), add_special_tokens=True, truncation=False, verbose=False
        )["input_ids"]
        too_long = [len(x) > self.max_length for x in ids]
        if truncate and any(too_long):
            redo = [i for i, t in enumerate(too_long) if t]
            cut = self.tokenizer(
                [texts[i] for i in redo],
                add_special_tokens=True,
                truncation=True,
                max_length=self.max_length,
            )["input_ids"]
            for i, new in zip(redo, cut, strict=True):
                ids[i] = new
        return ids, too_long

    def _forward(self, ids: Sequence[Sequence[int]], params: EmbedParams) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        t_ids = torch.from_numpy(input_ids).to(self.device)
        t_mask = torch.from_numpy(mask).to(self.device)
        with torch.inference_mode():
            hidden = self.model(
                input_ids=t_ids, attention_mask=t_mask, token_type_ids=torch.zeros_like(t_ids)
            ).last_hidden_state
            m = t_mask.unsqueeze(-1).to(torch.float32)
            pooled = (hidden.to(torch.float32) * m).sum(1) / m.sum(1).clamp(min=1e-9)
            if params.dimensions:
                pooled = pooled[:, : params.dimensions]
            if params.normalize:
                pooled = F.normalize(pooled, p=2, dim=1)
            return pooled.cpu().numpy()

    def run(
        self,
        inputs: Sequence[Any],
        params: EmbedParams,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[ItemResult]:
        """Embed texts; every item gets an output or an error, in input order."""
        texts = [str(x) for x in inputs]
        ids, too_long = self.tokenize(texts, params.truncate)
        results: list[ItemResult | None] = [None] * len(texts)
        runnable: list[int] = []
        for i, long_ in enumerate(too_long):
            if long_ and not params.truncate:
                results[i] = ItemResult(
                    error_code="input_too_long",
                    error_message=f"input has {len(ids[i])} tokens, the model takes "
                    f"{self.max_length} (set truncate to true to cut it)",
                )
            else:
                runnable.append(i)
        lengths = [len(ids[i]) for i in runnable]

        def record(pos: int, result: ItemResult) -> None:
            results[runnable[pos]] = result

        for batch in plan_batches(lengths, self.executor.max_batch_tokens):
            if should_stop():
                raise Cancelled()
            widest = max(lengths[p] for p in batch)
            self.executor.run(
                batch,
                lambda positions: self._forward([ids[runnable[p]] for p in positions], params),
                record,
                lambda vec: ItemResult(output=vec),
                widest,
            )
        return [
            r
            if r is not None
            else ItemResult(error_code="internal_error", error_message="no result produced")
            for r in results
        ]
