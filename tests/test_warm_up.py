"""The warm-up pass a worker makes of each model at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.contracts.items import ItemLimits, check_item
from core.contracts.params import parse_params
from core.contracts.spec import load_registry
from models.registry import load_runners
from models.warm_up import warm_up_inputs


@pytest.mark.parametrize("task", ["embed", "classify", "generate"])
def test_warm_up_inputs_pass_the_task_checks(task: str) -> None:
    inputs, params = warm_up_inputs(task)
    limits = ItemLimits(max_input_chars=100_000, max_custom_id_chars=64)
    assert inputs
    for value in inputs:
        check_item(task, value, limits)  # raises ItemInvalid for an input the task refuses
    parse_params(task, params)  # raises if the params do not suit the task


def test_each_task_warms_up_when_asked(registry_file: Path, caplog) -> None:
    registry = load_registry(registry_file)
    specs = [registry[n] for n in ("tiny-embed", "tiny-classify", "tiny-causal")]
    with caplog.at_level("INFO", logger="models.registry"):
        runners = load_runners(specs, warm=True)
    warmed = [r.getMessage().split()[1] for r in caplog.records if "warmed up" in r.getMessage()]
    assert warmed == ["tiny-embed", "tiny-classify", "tiny-causal"]
    assert set(runners) == set(warmed)
    caplog.clear()
    with caplog.at_level("INFO", logger="models.registry"):
        load_runners(specs[:1])
    assert not [r for r in caplog.records if "warmed up" in r.getMessage()]
