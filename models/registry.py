"""Loading runners once per process, for the models a worker serves."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import torch

from core.contracts.spec import ModelSpec
from models.classify import ClassifyRunner
from models.classify_image import ClassifyImageRunner
from models.embed import EmbedRunner
from models.generate import GenerateRunner
from models.results import ItemResult
from models.warm_up import warm_up

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the worker needs of a task runner."""

    task: str
    device: torch.device
    dtype: torch.dtype

    def run(
        self,
        inputs: Sequence[Any],
        params: Any,
        should_stop: Callable[[], bool] = ...,
        token_counts: Sequence[int] | None = None,
    ) -> list[ItemResult]:
        """Every input gets an output or an error, in input order."""
        ...


RUNNER_CLASSES: dict[str, Callable[[ModelSpec], Runner]] = {
    "embed": EmbedRunner,
    "classify": ClassifyRunner,
    "generate": GenerateRunner,
    "classify_image": ClassifyImageRunner,
}


def load_runners(specs: Iterable[ModelSpec], warm: bool = False) -> dict[str, Runner]:
    """Instantiate (load) one runner per spec, warmed by a first pass if asked; called
    once when a worker starts."""
    runners: dict[str, Runner] = {}
    for spec in specs:
        log.info("loading model %s (%s) from %s", spec.name, spec.task, spec.source)
        runner = RUNNER_CLASSES[spec.task](spec)
        log.info(
            "model %s ready on %s as %s%s",
            spec.name,
            runner.device,
            str(runner.dtype).removeprefix("torch."),
            " (int8 quantized)" if spec.quantize == "int8" else "",
        )
        if warm:
            log.info("model %s warmed up in %.2fs", spec.name, warm_up(runner))
        runners[spec.name] = runner
    return runners
