"""The chunk plan sluice makes for a real mixed corpus: token counts, and padding."""

from pathlib import Path

from core.chunking import bucket_chunks
from core.config import Settings
from models.embed import EmbedRunner
from models.planner import padding_efficiency, plan_batches
from models.spec import DEFAULT_MODELS_FILE, load_registry
from models.token_lengths import char_lengths, counter_for, token_counter
from tests.tiny_models import bench_texts


def _plan_efficiency(texts, sort_keys, token_lengths, spec):
    window = Settings().bucket_window_items
    real = padded = 0
    for _, positions in bucket_chunks(texts, sort_keys, chunk_size=spec.chunk_size, window=window):
        lengths = [token_lengths[p] for p in positions]
        plan = plan_batches(lengths, spec.max_batch_tokens)
        real += sum(lengths)
        padded += sum(lengths) / padding_efficiency(lengths, plan)
    return real / padded


def test_api_token_counts_equal_the_runners_tokenizer():
    spec = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"]
    texts = [*bench_texts(400, seed=15), "", "a " * 600, "émoji 🎉 and ünïcode"]
    ours = counter_for(spec)(texts)
    runner_tok = EmbedRunner(spec.model_copy(update={"dtype": "float32"})).tokenizer
    full = [len(ids) for ids in runner_tok(texts, truncation=False, verbose=False)["input_ids"]]
    assert ours == full
    pairs = [["a premise", "a hypothesis"]]
    assert counter_for(spec)(pairs) == [len(runner_tok("a premise", "a hypothesis")["input_ids"])]


def test_sluice_plan_pads_under_five_percent_on_the_mixed_corpus():
    spec = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"]
    texts = bench_texts(20000, seed=0)
    tokens = [min(n, spec.max_length) for n in counter_for(spec)(texts)]
    by_tokens = _plan_efficiency(texts, tokens, tokens, spec)
    by_chars = _plan_efficiency(texts, char_lengths(texts), tokens, spec)
    assert by_tokens >= 0.95, by_tokens
    assert by_tokens > by_chars  # why the API counts tokens rather than characters


def test_fallbacks_without_a_tokenizer(tmp_path: Path):
    assert token_counter(str(tmp_path)) is None
    assert char_lengths(["abc", ["ab", "c"]]) == [3, 3]
    missing = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"].model_copy(
        update={"source": "package:no_such_package_zz/model"}
    )
    assert counter_for(missing) is None
