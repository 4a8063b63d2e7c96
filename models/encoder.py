"""What encoder runners share: tokenising (with truncation reports), padding, planning,
and isolated execution of micro-batches."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import torch

from core.contracts.spec import ModelSpec
from models.batching import IsolatingExecutor
from models.device import (
    overlaps_tokenizing,
    pick_device,
    pick_dtype,
    quantize_int8,
    tune_for_varied_shapes,
    usable_cpus,
)
from models.observer import IGNORED, RunObserver, padded_batch
from models.planner import plan_batches
from models.results import Cancelled, ItemResult, filled

# On a CPU, a micro-batch's fixed cost is priced at this share of the token budget.
CPU_BATCH_OVERHEAD_SHARE = 64


def batch_overhead_tokens(device_type: str, max_batch_tokens: int) -> int | None:
    """What the planner charges per micro-batch, in tokens: on a CPU 1/64 of the budget;
    None on a GPU (batches filled to the budget)."""
    if device_type != "cpu":
        return None
    return max(1, max_batch_tokens // CPU_BATCH_OVERHEAD_SHARE)


# An input as the tokenizer takes it: a text, or a (text, text_pair) pair.
TextInput = str | tuple[str, str]


def rust_tokenizers(tokenizer: Any, max_length: int) -> tuple[Any, Any]:
    """Two copies of a fast tokenizer's Rust core, one that never cuts and one that cuts at
    max_length (longest first, as transformers does for pairs), neither padding; (None,
    None) for a slow tokenizer. Calling the core directly skips transformers' conversion of
    every encoding to Python dicts, which cost more than the encoding itself (measured on
    an H100: tokenising, not the model, bounded the embed loop)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None, None
    from tokenizers import Tokenizer

    plain, cut = Tokenizer.from_str(backend.to_str()), Tokenizer.from_str(backend.to_str())
    plain.no_truncation()
    plain.no_padding()
    cut.no_padding()
    cut.enable_truncation(max_length, strategy="longest_first")
    return plain, cut


class EncoderRunner:
    """Loads a model once; runs lists of inputs in token-budgeted micro-batches."""

    task = ""
    observer: RunObserver = IGNORED

    def __init__(self, spec: ModelSpec, model_cls: Any, device: torch.device | None = None) -> None:
        from transformers import AutoTokenizer

        self.spec = spec
        self.device = device or pick_device()
        tune_for_varied_shapes(self.device)
        quantized = spec.quantize == "int8"  # int8 works on a float32 model
        self.dtype = torch.float32 if quantized else pick_dtype(spec.dtype, self.device)
        path = spec.resolved_source()
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision)
        model = model_cls.from_pretrained(path, revision=spec.revision, dtype=self.dtype)
        model = model.to(self.device).eval()
        self.config = model.config
        self.model = quantize_int8(model, self.device) if quantized else model
        limit = getattr(model.config, "max_position_embeddings", spec.max_length)
        self.max_length = min(spec.max_length, limit)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self._plain, self._cut = rust_tokenizers(self.tokenizer, self.max_length)
        # BERT-likes take segment ids; MPNet, DistilBERT and others raise if given them.
        self.takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self.executor = IsolatingExecutor(spec.batch_tokens(self.device.type))
        self.explain_executor = IsolatingExecutor(spec.batch_tokens(self.device.type))

    def tokenize(
        self, inputs: Sequence[TextInput], truncate: bool, details: bool = False
    ) -> tuple[list[dict[str, list[Any]]], list[int]]:
        """Encodings per input (cut to max_length when truncating), and each one's full
        token count before any cut. With details (a fast tokenizer only), each also has its
        tokens, character offsets, special-token mask and segments, for explanations."""
        texts = [x if isinstance(x, str) else x[0] for x in inputs]
        # An empty text_pair is no pair, as transformers' tokenizers (and pipelines) take it.
        pairs = [None if isinstance(x, str) or not x[1] else x[1] for x in inputs]

        def encode_slow(idx: Sequence[int], cut: bool) -> list[dict[str, list[Any]]]:
            kw: dict[str, Any] = {"truncation": cut, "verbose": False}
            if cut:
                kw["max_length"] = self.max_length
            found: dict[int, dict[str, list[Any]]] = {}
            # Texts and pairs in calls of their own: a text sent as (text, "") would get a
            # second [SEP], and its output would depend on a pair sharing its chunk.
            for paired in (False, True):
                group = [i for i in idx if (pairs[i] is not None) == paired]
                if not group:
                    continue
                out = self.tokenizer(
                    [texts[i] for i in group],
                    [pairs[i] for i in group] if paired else None,
                    add_special_tokens=True,
                    **kw,
                )
                keys = [k for k in ("input_ids", "token_type_ids") if k in out]
                found.update({i: {k: out[k][n] for k in keys} for n, i in enumerate(group)})
            return [found[i] for i in idx]

        def encode(idx: Sequence[int], cut: bool) -> list[dict[str, list[Any]]]:
            if self._plain is None:  # a slow (Python) tokenizer: its own calls
                return encode_slow(idx, cut)
            rust = self._cut if cut else self._plain
            # A text alone as itself, never as (text, ""): see encode_slow.
            batch: list[Any] = [texts[i] if pairs[i] is None else (texts[i], pairs[i]) for i in idx]
            if details:  # encode_batch_fast leaves every offset at (0, 0)
                return [
                    {
                        "input_ids": e.ids,
                        "token_type_ids": e.type_ids,
                        "tokens": e.tokens,
                        "offsets": e.offsets,
                        "special": e.special_tokens_mask,
                        "segments": e.sequence_ids,
                    }
                    for e in rust.encode_batch(batch, add_special_tokens=True)
                ]
            return [
                {"input_ids": e.ids, "token_type_ids": e.type_ids}
                for e in rust.encode_batch_fast(batch, add_special_tokens=True)
            ]

        encodings = encode(range(len(inputs)), cut=False)
        full = [len(e["input_ids"]) for e in encodings]
        if truncate:
            redo = [i for i, n in enumerate(full) if n > self.max_length]
            if redo:
                for i, enc in zip(redo, encode(redo, cut=True), strict=True):
                    encodings[i] = enc
        return encodings, full

    def plan(self, lengths: Sequence[int], cost_factor: int = 1) -> list[list[int]]:
        """Micro-batches for token lengths under the current budget. On a CPU each batch's
        fixed cost is priced at 1/64 of the budget in tokens, and the planner trades padding
        against batch count (at 2,048 tokens, 32 per batch: all-MiniLM-L6-v2 in bf16 ran its
        chunks 3.4% faster than with batches filled to the budget, against 0.6% at 16 and
        2.5% at 64). On a GPU, where a batch's launch costs far more tokens, each batch is
        filled to the budget."""
        budget = max(1, self.executor_for(cost_factor).max_batch_tokens // cost_factor)
        overhead = batch_overhead_tokens(self.device.type, budget)
        return plan_batches(lengths, budget, overhead_tokens=overhead)

    def executor_for(self, cost_factor: int) -> IsolatingExecutor:
        """The executor of plain batches, or (cost_factor > 1: each item costs that many
        forwards) of explained ones, whose budget an OOM lowers on its own."""
        return self.executor if cost_factor == 1 else self.explain_executor

    def cost_factor(self, params: Any) -> int:
        """Passes per item: 1 for a plain run; more (always) where params ask for
        explanations, which then run with autograd on the explain executor."""
        return 1

    def _forward_picked(
        self, encoded: dict[int, dict[str, list[Any]]], params: Any, positions: Sequence[int]
    ) -> list[Any]:
        """forward_encoded of the encodings at these positions."""
        return self.forward_encoded([encoded[p] for p in positions], params)

    def forward_encoded(self, encodings: Sequence[dict[str, list[Any]]], params: Any) -> list[Any]:
        """Outputs (or whole ItemResults) for one micro-batch of encodings."""
        return self.forward(self.tensors(encodings), params)

    def tensors(self, encodings: Sequence[dict[str, list[Any]]]) -> dict[str, torch.Tensor]:
        """Right-padded model inputs for a micro-batch."""
        width = max(len(e["input_ids"]) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc["input_ids"])
            ids[row, :n] = enc["input_ids"]
            mask[row, :n] = 1
            if "token_type_ids" in enc:
                types[row, :n] = enc["token_type_ids"]
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.takes_token_types:
            out["token_type_ids"] = torch.from_numpy(types)
        return {k: v.to(self.device) for k, v in out.items()}

    def forward(self, batch: dict[str, torch.Tensor], params: Any) -> list[Any]:
        """Outputs for one padded micro-batch, one per row (each task defines it)."""
        raise NotImplementedError

    def run(
        self,
        inputs: Sequence[TextInput],
        params: Any,
        should_stop: Callable[[], bool] = lambda: False,
        token_counts: Sequence[int] | None = None,
    ) -> list[ItemResult]:
        """Every input gets an output or an error, in input order, with its token usage.

        With token_counts (the API's counts, from the same tokenizer) and a core to spare
        (beside a GPU, or where torch leaves a CPU free) the micro-batches are planned before
        anything is tokenised, and batch k+1 is tokenised on a thread while batch k runs.
        Otherwise the chunk is tokenised first, in one batched call over every core.
        """
        truncate = getattr(params, "truncate", True)
        factor = self.cost_factor(params)
        details = factor > 1
        encodings: list[dict[str, list[Any]]] | None = None
        ahead = overlaps_tokenizing(self.device, torch.get_num_threads(), usable_cpus())
        if ahead and token_counts is not None and len(token_counts) == len(inputs):
            full = list(token_counts)
            # The API's counts stop at max_length + 1: an input failed for its length is
            # counted in full here, so its message gives its real length.
            too_long = [] if truncate else [i for i, n in enumerate(full) if n > self.max_length]
            if too_long:
                exact = self.tokenize([inputs[i] for i in too_long], truncate=False)[1]
                for i, n in zip(too_long, exact, strict=True):
                    full[i] = n
        else:
            encodings, full = self.tokenize(inputs, truncate, details)
        results: list[ItemResult | None] = [None] * len(inputs)
        runnable: list[int] = []
        for i, n in enumerate(full):
            if n > self.max_length and not truncate:
                results[i] = ItemResult(
                    error_code="input_too_long",
                    error_message=f"input has {n} tokens, the model takes {self.max_length} "
                    "(set truncate to true to cut it)",
                    usage={"prompt_tokens": 0, "completion_tokens": 0},
                )
            else:
                runnable.append(i)
        lengths = [min(full[i], self.max_length) for i in runnable]

        def fetch(batch: Sequence[int]) -> dict[int, dict[str, list[Any]]]:
            if encodings is not None:
                return {p: encodings[runnable[p]] for p in batch}
            encoded = self.tokenize([inputs[runnable[p]] for p in batch], truncate, details)[0]
            return dict(zip(batch, encoded, strict=True))

        def record(pos: int, result: ItemResult) -> None:
            i = runnable[pos]
            results[i] = result.with_usage(lengths[pos], truncated=full[i] > lengths[pos])

        plan = self.plan(lengths, factor)
        executor = self.executor_for(factor)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as tokenizing:
            upcoming: Future[dict[int, dict[str, list[Any]]]] | None = (
                tokenizing.submit(fetch, plan[0]) if plan else None
            )
            for k, batch in enumerate(plan):
                if should_stop():
                    raise Cancelled()
                assert upcoming is not None
                encoded = upcoming.result()
                upcoming = tokenizing.submit(fetch, plan[k + 1]) if k + 1 < len(plan) else None
                real, padded = padded_batch([lengths[p] for p in batch])
                self.observer.micro_batch(items=len(batch), real_units=real, padded_units=padded)
                # Explanations need autograd, which inference mode forbids.
                with torch.inference_mode(factor == 1):
                    executor.run(
                        batch,
                        partial(self._forward_picked, encoded, params),
                        record,
                        max(lengths[p] for p in batch) * factor,
                    )
        return filled(results)
