"""models.yaml parsing (torch-free)."""

import pytest

from core.contracts.spec import (
    DEFAULT_MODELS_FILE,
    ModelRegistryError,
    load_registry,
    parse_registry,
)


def test_bundled_registry_resolves_packaged_minilm(tmp_path):
    reg = load_registry(DEFAULT_MODELS_FILE)
    spec = reg["all-minilm-l6-v2"]
    assert spec.task == "embed" and spec.max_length == 256
    assert (tmp_path.__class__(spec.resolved_source()) / "config.json").exists()


@pytest.mark.parametrize(
    "text,needle",
    [
        ("models: {}", "at least one entry"),
        ("nope: 1", "expected a mapping `models:`"),
        ("models:\n  m: {task: embed}", "m.source"),
        ("models:\n  m: {task: dance, source: x}", "m.task"),
        ("models:\n  m: {task: embed, source: x, max_length: 0}", "m.max_length"),
        ("models:\n  m: {task: embed, source: x, colour: red}", "m.colour"),
        ("models: [", "not valid YAML"),
        (
            "models:\n  m: {task: embed, source: x, gpu_max_batch_tokens: 0}",
            "m.gpu_max_batch_tokens",
        ),
    ],
)
def test_invalid_registry_fails_with_clear_message(text, needle):
    with pytest.raises(ModelRegistryError, match=None) as info:
        parse_registry(text)
    assert needle in str(info.value)


def test_missing_package_is_reported():
    reg = parse_registry("models:\n  m: {task: embed, source: 'package:no_such_pkg_x/model'}")
    with pytest.raises(ModelRegistryError, match="not installed"):
        reg["m"].resolved_source()


def test_token_budget_per_device():
    both = parse_registry(
        "models:\n  m: {task: embed, source: x, max_batch_tokens: 2048,"
        " gpu_max_batch_tokens: 65536}"
    )["m"]
    assert both.batch_tokens("cpu") == 2048 and both.batch_tokens("cuda") == 65536
    cpu_only = parse_registry("models:\n  m: {task: embed, source: x, max_batch_tokens: 4096}")["m"]
    assert cpu_only.batch_tokens("cuda") == 4096  # unset: the GPU uses max_batch_tokens
