"""Explanations of text classifications: integrated gradients on the input word embeddings,
reported per token with character offsets into the input.

The baseline is the same sequence with every token that is not special replaced by the
pad token ([CLS] and [SEP] kept, positions and segments as the model computes them), so
special tokens score exactly 0 and are left out of the list; `sum` covers every position
and equals `delta` = f(input) - f(baseline) for the explained logit f, up to quadrature
error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from models.batching import IsolatingExecutor
from models.integrated_gradients import integrated_gradients, pick_targets


def baseline_ids(
    ids: torch.Tensor, encodings: Sequence[dict[str, list[Any]]], pad_id: int
) -> torch.Tensor:
    """The micro-batch's ids with every token that is not special set to the pad id."""
    keep = torch.zeros(ids.shape, dtype=torch.bool)
    for row, enc in enumerate(encodings):
        special = enc["special"]
        keep[row, : len(special)] = torch.tensor(special, dtype=torch.bool)
    return torch.where(keep.to(ids.device), ids, torch.full_like(ids, pad_id))


def token_scores(enc: dict[str, list[Any]], scores: list[float]) -> list[dict[str, Any]]:
    """{token, segment, start, end, score} for each token that is not special: `segment` 0
    is the text and 1 the text_pair, and start:end indexes that string's characters."""
    # scores is the padded row: zip stops at the encoding's own tokens.
    return [
        {
            "token": token,
            "segment": segment,
            "start": start,
            "end": end,
            "score": score,
        }
        for token, segment, (start, end), special, score in zip(
            enc["tokens"], enc["segments"], enc["offsets"], enc["special"], scores, strict=False
        )
        if not special
    ]


def explain_texts(
    model: Any,
    batch: dict[str, torch.Tensor],
    encodings: Sequence[dict[str, list[Any]]],
    explain: Any,
    labels: list[str],
    pad_id: int,
    executor: IsolatingExecutor,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """The logits of one padded micro-batch and an explanation per row, in passes of at
    most the executor's budget of padded tokens (lowered there if a pass runs out of
    memory)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    types = batch.get("token_type_ids")
    embed = model.get_input_embeddings()
    inputs = embed(ids).detach()
    baselines = embed(baseline_ids(ids, encodings, pad_id)).detach()

    def score(path: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        extra = {} if types is None else {"token_type_ids": types[rows]}
        return model(inputs_embeds=path, attention_mask=mask[rows], **extra).logits.float()

    k = len(encodings)
    with torch.no_grad():  # both ends of every path, through the same embeddings
        ends = score(torch.cat([inputs, baselines]), torch.arange(k).repeat(2).to(ids.device))
    logits, base_logits = ends[:k], ends[k:]
    targets = pick_targets(logits.cpu(), explain.target, labels)
    width = ids.shape[1]
    attributions = integrated_gradients(
        score,
        inputs,
        baselines,
        targets,
        explain.steps,
        executor.max_batch_tokens // width,
        lambda rows: executor.back_off(rows * width),
    ).sum(-1)
    per_token = attributions.cpu().tolist()
    totals = attributions.to(torch.float64).sum(-1).tolist()
    deltas = (logits - base_logits).gather(1, targets.to(ids.device).unsqueeze(1))
    explanations = [
        {
            "target": labels[int(targets[row])],
            "tokens": token_scores(enc, per_token[row]),
            "sum": totals[row],
            "delta": float(deltas[row]),
        }
        for row, enc in enumerate(encodings)
    ]
    return logits, explanations
