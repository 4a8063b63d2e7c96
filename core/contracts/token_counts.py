"""Token counts for length bucketing, from a model's tokenizer.json. Torch-free (the Rust
`tokenizers` library only), so the API can sort a job's items by real token length."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from core.contracts.params import input_texts

Counter = Callable[[Sequence[Any]], list[int]]
# Inputs per encode_batch call, and characters: a call holds every token of its inputs at
# once (ids, masks, offsets, the token strings: about 130 bytes a token, measured, and the
# tokenizer cuts at max_length only after tokenising the whole text), so 100,000 inputs of
# 600 characters in one call took 1.7 GiB; a call of these bounds holds a few tens of MB.
BATCH_ITEMS = 2048
BATCH_CHARS = 1 << 19


def _encodable(item: Any) -> str | tuple[str, str]:
    """What the tokenizer counts for an input: a text, a text pair, or a prompt's text."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):  # a generate prompt or chat: count its text
        return " ".join(input_texts(item))
    return (item[0], item[1]) if item[1] else item[0]  # an empty pair is no pair


def char_lengths(inputs: Sequence[Any]) -> list[int]:
    """The fallback sort key: characters of all the text in each input."""
    return [len(x) if type(x) is str else sum(len(t) for t in input_texts(x)) for x in inputs]


def _batches(inputs: Sequence[Any]) -> Iterator[list[str | tuple[str, str]]]:
    """What the tokenizer counts for the inputs, in consecutive batches of at most
    BATCH_ITEMS inputs and (but for a single longer one) BATCH_CHARS characters."""
    batch: list[str | tuple[str, str]] = []
    chars = 0
    for x in inputs:
        item = _encodable(x)
        size = len(item) if isinstance(item, str) else len(item[0]) + len(item[1])
        if batch and (len(batch) == BATCH_ITEMS or chars + size > BATCH_CHARS):
            yield batch
            batch, chars = [], 0
        batch.append(item)
        chars += size
    if batch:
        yield batch


@lru_cache(maxsize=32)
def token_counter(source_dir: str, max_length: int | None = None) -> Counter | None:
    """Counts tokens (special tokens included) as the model's tokenizer does, in bounded
    batches; with max_length, cut at max_length + 1, so a count over max_length says the
    input is longer than the model takes (which the runner needs to know: it cuts such an
    input, or fails it when truncate is off) without costing more. None where the source
    has no tokenizer.json on local disk."""
    path = Path(source_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    tokenizer = Tokenizer.from_file(str(path))
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length + 1, strategy="longest_first")
    tokenizer.no_padding()
    # Counting needs no character offsets; the fast variant skips them where it exists.
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    def count(inputs: Sequence[Any]) -> list[int]:
        counts: list[int] = []
        for batch in _batches(inputs):
            # len() of an encoding is its token count, without copying its ids into a list.
            counts += [len(e) for e in encode(batch, add_special_tokens=True)]
        return counts

    return count


def counter_for(spec: Any) -> Counter | None:
    """The token counter of a registry entry, cut at its max_length + 1; None if it has no
    local tokenizer."""
    try:
        return token_counter(spec.resolved_source(), spec.max_length)
    except (ValueError, OSError):
        return None
