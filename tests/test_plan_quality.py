"""The chunk plan sluice makes for a real mixed corpus: token counts, and padding."""

from pathlib import Path

from core.chunking import bucket_chunks
from core.config import Settings
from core.contracts.spec import DEFAULT_MODELS_FILE, load_registry
from core.contracts.token_counts import char_lengths, counter_for, token_counter
from models.embed import EmbedRunner
from models.encoder import batch_overhead_tokens
from models.planner import padding_efficiency, plan_batches
from tests.tiny_models import bench_texts


def _plan_efficiency(texts, sort_keys, token_lengths, spec, priced=True):
    window = Settings().bucket_window_items
    budget = spec.max_batch_tokens
    per_batch = batch_overhead_tokens("cpu", budget) if priced else None
    real = padded = 0
    for _, positions in bucket_chunks(texts, sort_keys, chunk_size=spec.chunk_size, window=window):
        lengths = [token_lengths[p] for p in positions]
        plan = plan_batches(lengths, budget, overhead_tokens=per_batch)
        real += sum(lengths)
        padded += sum(lengths) / padding_efficiency(lengths, plan)
    return real / padded


def test_api_token_counts_equal_the_runners_tokenizer():
    spec = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"]
    texts = [*bench_texts(400, seed=15), "", "a " * 600, "émoji 🎉 and ünïcode"]
    ours = counter_for(spec)(texts)
    runner_tok = EmbedRunner(spec.model_copy(update={"dtype": "float32"})).tokenizer
    full = [len(ids) for ids in runner_tok(texts, truncation=False, verbose=False)["input_ids"]]
    # Counts stop at max_length + 1: "longer than the model takes" is all the runner needs.
    assert ours == [min(n, spec.max_length + 1) for n in full]
    assert max(full) > spec.max_length + 1
    pairs = [["a premise", "a hypothesis"], ["a premise " * 300, "a hypothesis " * 300]]
    assert counter_for(spec)(pairs) == [
        len(runner_tok("a premise", "a hypothesis")["input_ids"]),
        spec.max_length + 1,
    ]


def test_token_counts_come_in_bounded_batches(monkeypatch):
    """Many inputs are counted in slices of BATCH_ITEMS and BATCH_CHARS, with the same
    counts as one call (one call held every token of a 100,000-input job at once)."""
    import core.contracts.token_counts as token_counts

    spec = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"]
    texts = bench_texts(600, seed=16)
    whole = counter_for(spec)(texts)
    assert list(map(len, token_counts._batches(texts))) == [600]
    monkeypatch.setattr(token_counts, "BATCH_ITEMS", 64)
    monkeypatch.setattr(token_counts, "BATCH_CHARS", 4000)
    sizes = [len(b) for b in token_counts._batches(texts)]
    assert sum(sizes) == 600 and max(sizes) <= 64 and len(sizes) > 600 // 64
    assert counter_for(spec)(texts) == whole


def test_sluice_plan_pads_under_five_percent_on_the_mixed_corpus():
    spec = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"]
    texts = bench_texts(20000, seed=0)
    tokens = [min(n, spec.max_length) for n in counter_for(spec)(texts)]
    by_tokens = _plan_efficiency(texts, tokens, tokens, spec)
    by_chars = _plan_efficiency(texts, char_lengths(texts), tokens, spec)
    assert by_tokens >= 0.95, by_tokens
    assert by_tokens > by_chars  # why the API counts tokens rather than characters
    # Pricing each batch (the CPU runner's plan) pads less than filling every batch: with
    # windows of 16,384, 0.29% of padded tokens against 1.14%. It must at least halve them.
    filled = _plan_efficiency(texts, tokens, tokens, spec, priced=False)
    assert (1 - by_tokens) * 2 < 1 - filled, (by_tokens, filled)


def test_fallbacks_without_a_tokenizer(tmp_path: Path):
    assert token_counter(str(tmp_path)) is None
    assert char_lengths(["abc", ["ab", "c"]]) == [3, 3]
    missing = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"].model_copy(
        update={"source": "package:no_such_package_zz/model"}
    )
    assert counter_for(missing) is None


def _reference(tokenizer, inputs, max_length, cut):
    """transformers' own call on each input as the text-classification pipeline makes it:
    a text alone, a pair as (text, text_pair); a text beside pairs is still a text alone."""
    kw = {"truncation": True, "max_length": max_length} if cut else {"truncation": False}
    ids, types = [], []
    for x in inputs:
        out = tokenizer(x, verbose=False, **kw) if isinstance(x, str) else tokenizer(*x, **kw)
        ids.append(out["input_ids"])
        types.append(out.get("token_type_ids"))
    return ids, (None if any(t is None for t in types) else types)


def test_runner_tokenises_as_transformers_does(registry_file: Path):
    """The runner encodes with the tokenizer's Rust core directly; every id and segment id
    must equal transformers' call, with and without truncation, for texts and pairs."""
    from models.classify import ClassifyRunner

    minilm = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"]
    runners = [
        EmbedRunner(minilm.model_copy(update={"dtype": "float32", "max_length": 24})),
        ClassifyRunner(load_registry(registry_file)["tiny-classify"]),
    ]
    texts = [*bench_texts(300, seed=21), "", "a " * 600, "émoji 🎉 and ünïcode"]
    pairs = [(t, texts[-1 - n]) for n, t in enumerate(texts[:50])]
    for runner in runners:
        assert runner._plain is not None  # the fast path is the one under test
        for inputs in (texts, [*pairs, "a text without a pair"]):
            for cut in (False, True):
                encodings, full = runner.tokenize(inputs, truncate=cut)
                ids, types = _reference(runner.tokenizer, inputs, runner.max_length, cut)
                assert [e["input_ids"] for e in encodings] == ids
                if types is not None:
                    assert [e["token_type_ids"] for e in encodings] == types
                if not cut:
                    assert full == [len(x) for x in ids]
                assert any(n > runner.max_length for n in full)  # truncation is exercised
