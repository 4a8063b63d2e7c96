"""The classify_image runner: labels and scores per image, like transformers'
image-classification pipeline. Images are decoded and preprocessed for micro-batch k+1 on
a thread while micro-batch k computes; an image that cannot be decoded fails alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import torch
from PIL import Image

from core.config import get_settings
from core.contracts.images import ImageLimits, ImageRejected, decode_image
from core.contracts.spec import ModelSpec
from models.batching import IsolatingExecutor
from models.classify import ranked_labels
from models.device import pick_device, pick_dtype, tune_for_varied_shapes
from models.explain_images import explain_images
from models.image_programs import ImageClassifier
from models.integrated_gradients import freeze
from models.observer import IGNORED, RunObserver
from models.results import Cancelled, ItemResult, filled

# What a micro-batch's preparation gives: (positions decoded, their pixels), and the
# errors of the positions that could not be decoded.
Prepared = tuple[list[int], torch.Tensor | None, dict[int, ImageRejected]]


def plan_images(count: int, max_images: int) -> list[list[int]]:
    """Micro-batches of at most max_images consecutive positions, sizes as even as the
    count allows (the last batch is no straggler)."""
    if count == 0:
        return []
    batches = -(-count // max(1, max_images))
    base, extra = divmod(count, batches)
    out, start = [], 0
    for k in range(batches):
        size = base + (1 if k < extra else 0)
        out.append(list(range(start, start + size)))
        start += size
    return out


class ClassifyImageRunner:
    """Scores each image against the model's labels, in image-count budgeted micro-batches
    with OOM back-off and per-item isolation."""

    task = "classify_image"
    observer: RunObserver = IGNORED

    def __init__(
        self,
        spec: ModelSpec,
        device: torch.device | None = None,
        limits: ImageLimits | None = None,
    ) -> None:
        self.spec = spec
        self.device = device or pick_device()
        tune_for_varied_shapes(self.device)
        self.dtype = (
            torch.float32
            if spec.program_format() is not None
            else pick_dtype(spec.dtype, self.device)
        )
        self.classifier = ImageClassifier(spec, self.device, self.dtype)
        self.labels = self.classifier.labels
        if limits is None:
            cfg = get_settings()
            limits = ImageLimits(cfg.max_image_bytes, cfg.max_image_pixels)
        self.limits = limits
        self.executor = IsolatingExecutor(spec.batch_images(self.device.type))
        # Explained batches back off on their own: a backward holds far more memory.
        self.explain_executor = IsolatingExecutor(spec.batch_images(self.device.type))
        if isinstance(self.classifier.model, torch.nn.Module):
            freeze(self.classifier.model)

    def prepare(self, inputs: Sequence[str], positions: Sequence[int]) -> Prepared:
        """Decode and preprocess one micro-batch; an image that fails is set aside."""
        decoded: list[Image.Image] = []
        kept: list[int] = []
        rejected: dict[int, ImageRejected] = {}
        for pos in positions:
            try:
                decoded.append(decode_image(inputs[pos], self.limits, self.classifier.channel_mode))
                kept.append(pos)
            except ImageRejected as exc:
                rejected[pos] = exc
        if not decoded:
            return kept, None, rejected
        return kept, self.classifier.preprocess(decoded), rejected

    def forward(self, pixels: torch.Tensor, params: Any) -> list[Any]:
        """Top-k labels with scores per image, best first."""
        logits = self.classifier.logits(pixels)
        return ranked_labels(logits, self.labels, params.top_k, self.classifier.multi_label)

    def explain(self, pixels: torch.Tensor, params: Any) -> list[ItemResult]:
        """Top-k labels per image, each with its explanation (params.explain)."""
        if params.explain.target not in ("top", *self.labels):
            message = f"{self.spec.name} has no label {params.explain.target!r}"
            return [ItemResult(error_code="invalid_params", error_message=message)] * len(pixels)
        logits, explanations = explain_images(
            self.classifier.logits,
            pixels.to(self.device),
            params.explain,
            self.labels,
            self.explain_executor,
        )
        outputs = ranked_labels(logits, self.labels, params.top_k, self.classifier.multi_label)
        return [
            ItemResult(output=out, explanation=why)
            for out, why in zip(outputs, explanations, strict=True)
        ]

    def run(
        self,
        inputs: Sequence[str],
        params: Any,
        should_stop: Callable[[], bool] = lambda: False,
        token_counts: Sequence[int] | None = None,
    ) -> list[ItemResult]:
        """Every image gets an output or an error, in input order (token_counts are a text
        runner's; images have none)."""
        results: list[ItemResult | None] = [None] * len(inputs)

        def record(pos: int, result: ItemResult) -> None:
            results[pos] = result

        # An explained image costs its steps and its path's two ends in passes.
        cost = 1 if params.explain is None else params.explain.steps + 2
        executor = self.executor if cost == 1 else self.explain_executor
        forward = self.forward if cost == 1 else self.explain
        plan = plan_images(len(inputs), max(1, executor.max_batch_tokens // cost))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as ahead:
            upcoming: Future[Prepared] | None = (
                ahead.submit(self.prepare, inputs, plan[0]) if plan else None
            )
            for k in range(len(plan)):
                if should_stop():
                    raise Cancelled()
                assert upcoming is not None
                kept, pixels, rejected = upcoming.result()
                upcoming = (
                    ahead.submit(self.prepare, inputs, plan[k + 1]) if k + 1 < len(plan) else None
                )
                for pos, exc in rejected.items():
                    record(pos, ItemResult(error_code=exc.code, error_message=exc.message))
                if pixels is None:
                    continue
                # Every image is resized to the model's input: nothing is padded.
                self.observer.micro_batch(
                    items=len(kept), real_units=len(kept), padded_units=len(kept)
                )
                # Explanations need autograd, which inference mode forbids.
                with torch.inference_mode(cost == 1):
                    executor.run(
                        list(range(len(kept))),
                        partial(_forward_picked, forward, pixels, params),
                        partial(_record_kept, record, kept),
                        cost,
                    )
        return filled(results)


def _forward_picked(
    forward: Callable[[torch.Tensor, Any], list[Any]],
    pixels: torch.Tensor,
    params: Any,
    picked: Sequence[int],
) -> list[Any]:
    """forward of the picked rows of a micro-batch's pixels."""
    return forward(pixels[list(picked)], params)


def _record_kept(
    record: Callable[[int, ItemResult], None], kept: Sequence[int], row: int, result: ItemResult
) -> None:
    """record a row's result under the input position it was kept from."""
    record(kept[row], result)
