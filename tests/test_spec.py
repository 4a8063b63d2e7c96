"""models.yaml parsing (torch-free)."""

import pytest

from models.spec import DEFAULT_MODELS_FILE, ModelRegistryError, load_registry, parse_registry


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
