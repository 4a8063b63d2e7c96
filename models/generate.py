"""The generate runner: causal LMs, left padding, greedy or seeded per-item sampling,
stop strings, and a finish_reason per item."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

import torch

from core.contracts.params import GenerateParams
from core.contracts.spec import ModelSpec
from models.batching import IsolatingExecutor
from models.device import pick_device, pick_dtype, quantize_int8, tune_for_varied_shapes
from models.observer import IGNORED, RunObserver, padded_batch
from models.planner import plan_batches
from models.results import Cancelled, ItemResult, filled


class SeededSampler:
    """A logits processor that samples each row with its own generator, then forces that
    token: generate() stays greedy, and an item's draws depend on its seed alone, never on
    the batch around it (torch.multinomial would share one global RNG across rows)."""

    def __init__(
        self, seeds: Sequence[int], temperature: float, top_p: float, device: torch.device
    ) -> None:
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        self.temperature, self.top_p, self.device = temperature, top_p, device

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Replace each row's scores by a one-hot choice of its sampled token."""
        probs = torch.softmax(scores.to(torch.float32) / self.temperature, dim=-1).cpu()
        chosen = torch.empty(len(self.generators), dtype=torch.long)
        for row, gen in enumerate(self.generators):
            p = probs[row]
            if self.top_p < 1.0:
                sorted_p, order = torch.sort(p, descending=True)
                keep = torch.cumsum(sorted_p, 0) - sorted_p < self.top_p
                p = torch.zeros_like(p).scatter(0, order[keep], sorted_p[keep])
            chosen[row] = torch.multinomial(p / p.sum(), 1, generator=gen)[0]
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(len(chosen)), chosen.to(scores.device)] = 0.0
        return forced


def item_seed(item: Any, params: GenerateParams) -> int:
    """An item's sampling seed: its own, else the job's, else a fresh random one."""
    if isinstance(item, dict) and item.get("seed") is not None:
        return int(item["seed"])
    if params.seed is not None:
        return params.seed
    return secrets.randbits(63)


class GenerateRunner:
    """Loads a causal LM once; completes prompts (or chats) in token-budgeted batches."""

    task = "generate"
    observer: RunObserver = IGNORED

    def __init__(self, spec: ModelSpec, device: torch.device | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.device = device or pick_device()
        tune_for_varied_shapes(self.device)
        quantized = spec.quantize == "int8"
        self.dtype = torch.float32 if quantized else pick_dtype(spec.dtype, self.device)
        path = spec.resolved_source()
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision)
        self.tokenizer.padding_side = "left"  # new tokens follow every prompt directly
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, revision=spec.revision, dtype=self.dtype)
        # transformers types .to through a decorator that mistypes its argument
        model = model.to(self.device).eval()  # type: ignore[arg-type]
        self.config = model.config
        self.model = quantize_int8(model, self.device) if quantized else model
        limit = getattr(model.config, "max_position_embeddings", spec.max_length)
        self.max_length = min(spec.max_length, limit)
        self.executor = IsolatingExecutor(spec.batch_tokens(self.device.type))

    def prompt_text(self, item: Any) -> str:
        """A prompt string, or a chat rendered with the tokenizer's template."""
        if isinstance(item, str):
            return item
        if "prompt" in item:
            return str(item["prompt"])
        return str(
            self.tokenizer.apply_chat_template(
                item["messages"], tokenize=False, add_generation_prompt=True
            )
        )

    def _generate(
        self,
        prompts: Sequence[list[int]],
        seeds: Sequence[int],
        params: GenerateParams,
    ) -> list[list[int]]:
        padded = self.tokenizer.pad({"input_ids": list(prompts)}, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in padded.items()}
        kw: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": False,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            kw["logits_processor"] = [
                SeededSampler(seeds, params.temperature, params.top_p, self.device)
            ]
        # transformers' stubs type generate as the module attribute (a Tensor)
        out = self.model.generate(**batch, **kw)  # type: ignore[operator]
        width = batch["input_ids"].shape[1]
        return [row[width:].tolist() for row in out]

    def _finish(self, tokens: list[int], params: GenerateParams) -> tuple[str, str, int]:
        """Text, finish_reason and the completion tokens counted, with stops applied."""
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        reason = "length"
        if eos is not None and eos in tokens:
            tokens, reason = tokens[: tokens.index(eos)], "stop"
        elif pad is not None and pad != eos:
            tokens = [t for t in tokens if t != pad]
        text = str(self.tokenizer.decode(tokens, skip_special_tokens=True))
        cuts = [text.find(s) for s in params.stop if s and s in text]
        if cuts:
            text, reason = text[: min(cuts)], "stop"
        return text, reason, len(tokens)

    def run(
        self,
        inputs: Sequence[Any],
        params: GenerateParams,
        should_stop: Callable[[], bool] = lambda: False,
        token_counts: Sequence[int] | None = None,
    ) -> list[ItemResult]:
        """Every prompt gets a completion or an error, in input order, with token usage.

        Prompts are tokenised up front, after their chat templates are applied (which the
        API's counts do not see); token_counts is accepted for a common signature only.
        """
        prompts = [
            self.tokenizer(self.prompt_text(x), add_special_tokens=True)["input_ids"]
            for x in inputs
        ]
        seeds = [item_seed(x, params) for x in inputs]
        results: list[ItemResult | None] = [None] * len(inputs)
        room = self.max_length - params.max_new_tokens
        runnable = []
        for i, ids in enumerate(prompts):
            if len(ids) > room:
                results[i] = ItemResult(
                    error_code="input_too_long",
                    error_message=f"prompt has {len(ids)} tokens; with max_new_tokens "
                    f"{params.max_new_tokens} the model takes at most {max(room, 0)}",
                    usage={"prompt_tokens": len(ids), "completion_tokens": 0},
                )
            else:
                runnable.append(i)
        cost = [len(prompts[i]) + params.max_new_tokens for i in runnable]

        def record(pos: int, result: ItemResult) -> None:
            i = runnable[pos]
            if result.ok:
                text, reason, used = self._finish(result.output, params)
                result = ItemResult(output={"text": text, "finish_reason": reason})
                results[i] = result.with_usage(len(prompts[i]), used)
            else:
                results[i] = result

        for batch in plan_batches(cost, self.executor.max_batch_tokens):
            if should_stop():
                raise Cancelled()
            # Prompts are left-padded to the longest; what generation adds is not counted.
            real, padded = padded_batch([len(prompts[runnable[p]]) for p in batch])
            self.observer.micro_batch(items=len(batch), real_units=real, padded_units=padded)
            with torch.inference_mode():
                self.executor.run(
                    batch,
                    lambda positions: self._generate(
                        [prompts[runnable[p]] for p in positions],
                        [seeds[runnable[p]] for p in positions],
                        params,
                    ),
                    record,
                    max(cost[p] for p in batch),
                )
        return filled(results)
