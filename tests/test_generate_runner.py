"""The generate runner on a tiny seeded GPT-2, against model.generate one prompt at a time."""

from pathlib import Path

import pytest
import torch

from core.contracts.params import GenerateParams, check_input
from core.contracts.spec import load_registry
from models.generate import GenerateRunner, SeededSampler
from tests.tiny_models import bench_texts

GREEDY = GenerateParams(temperature=0, max_new_tokens=12)


@pytest.fixture(scope="module")
def runner(registry_file: Path) -> GenerateRunner:
    return GenerateRunner(load_registry(registry_file)["tiny-causal"])


def _prompts(n, seed=21):
    return [t[: 20 + (i * 37) % 300] for i, t in enumerate(bench_texts(n, seed=seed))]


def test_greedy_batched_equals_model_generate_one_at_a_time(runner):
    prompts = _prompts(24)
    ours = runner.run(prompts, GREEDY)
    tok, model = runner.tokenizer, runner.model
    for prompt, got in zip(prompts, ours, strict=True):
        ids = tok(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id
            )
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        eos = tok.eos_token_id
        if eos in new:
            new = new[: new.index(eos)]
        assert got.ok and got.output["text"] == tok.decode(new, skip_special_tokens=True)
        assert got.usage == {
            "prompt_tokens": ids["input_ids"].shape[1],
            "completion_tokens": len(new),
        }


def test_seeded_sampling_is_independent_of_the_batch(runner):
    params = GenerateParams(temperature=1.0, max_new_tokens=10, seed=7)
    prompts = _prompts(12, seed=22)
    batched = runner.run(prompts, params)
    for i in (0, 5, 11):
        alone = runner.run([prompts[i]], params)[0]
        assert alone.output == batched[i].output
    per_item = runner.run([{"prompt": prompts[0], "seed": 8}, prompts[0]], params)
    assert per_item[1].output == batched[0].output  # job seed 7 for the plain prompt
    other = [
        runner.run([{"prompt": prompts[0], "seed": s}], params)[0].output["text"]
        for s in range(8, 14)
    ]
    assert len(set(other)) > 1  # the seed matters


def test_tiny_top_p_is_greedy(runner):
    prompts = _prompts(6, seed=23)
    sampled = runner.run(
        prompts, GenerateParams(temperature=1.0, top_p=1e-6, seed=1, max_new_tokens=12)
    )
    greedy = runner.run(prompts, GREEDY)
    assert [s.output for s in sampled] == [g.output for g in greedy]


def test_finish_reasons_and_stop_strings(runner):
    tok = runner.tokenizer
    params = GenerateParams(temperature=0, max_new_tokens=12)
    words = tok("alpha beta gamma")["input_ids"]
    assert runner._finish(words, params) == ("alpha beta gamma", "length", len(words))
    with_eos = [*words, tok.eos_token_id, *words]
    assert runner._finish(with_eos, params) == ("alpha beta gamma", "stop", len(words))
    cut = GenerateParams(temperature=0, max_new_tokens=12, stop=["gamma", " beta"])
    assert runner._finish(words, cut)[:2] == ("alpha", "stop")
    res = runner.run(_prompts(8, seed=24), GREEDY)
    assert all(r.output["finish_reason"] in ("stop", "length") for r in res)
    assert all(r.usage["completion_tokens"] <= 12 for r in res)


def test_chat_messages_use_the_template(runner):
    chat = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is a gloss?"},
        ]
    }
    text = runner.prompt_text(chat)
    assert text == "<|system|>be brief\n<|user|>what is a gloss?\n<|assistant|>"
    assert runner.run([chat], GREEDY)[0].output == runner.run([text], GREEDY)[0].output


def test_prompt_too_long_fails_alone(runner):
    res = runner.run(["word " * 400, "short"], GREEDY)
    assert res[0].error_code == "input_too_long" and res[1].ok


def test_sampler_forces_one_token_per_row():
    sampler = SeededSampler([1, 2], temperature=1.0, top_p=1.0, device=torch.device("cpu"))
    out = sampler(torch.zeros(2, 1), torch.randn(2, 50))
    assert ((out == 0).sum(dim=1) == 1).all()


@pytest.mark.parametrize(
    "bad",
    [
        5,
        {"prompt": 1},
        {"messages": []},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"prompt": "a", "messages": [{"role": "user", "content": "x"}]},
        {"prompt": "a", "seed": -1},
        {"prompt": "a", "seed": True},
        {"prompt": "a", "temperature": 1},
    ],
)
def test_generate_input_shapes(bad):
    with pytest.raises(ValueError):
        check_input("generate", bad)
    assert check_input("generate", {"prompt": "a", "seed": 3}) == {"prompt": "a", "seed": 3}
