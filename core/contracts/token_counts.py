"""Token counts for length bucketing, from a model's tokenizer.json. Torch-free (the Rust
`tokenizers` library only), so the API can sort a job's items by real token length."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from core.contracts.params import input_texts

Counter = Callable[[Sequence[Any]], list[int]]


def _encodable(item: Any) -> str | tuple[str, str]:
    """What the tokenizer counts for an input: a text, a text pair, or a prompt's text."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):  # a generate prompt or chat: count its text
        return " ".join(input_texts(item))
    return (item[0], item[1])


def char_lengths(inputs: Sequence[Any]) -> list[int]:
    """The fallback sort key: characters of all the text in each input."""
    return [len(x) if type(x) is str else sum(len(t) for t in input_texts(x)) for x in inputs]


@lru_cache(maxsize=32)
def token_counter(source_dir: str) -> Counter | None:
    """Counts tokens (special tokens included, never truncated) as the model's tokenizer
    does; None where the source has no tokenizer.json on local disk."""
    path = Path(source_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    # Counting needs no character offsets; the fast variant skips them where it exists.
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    def count(inputs: Sequence[Any]) -> list[int]:
        batch = [_encodable(x) for x in inputs]
        # len() of an encoding is its token count, without copying its ids into a list.
        return [len(e) for e in encode(batch, add_special_tokens=True)]

    return count


def counter_for(spec: Any) -> Counter | None:
    """The token counter of a registry entry; None if it has no local tokenizer."""
    try:
        return token_counter(spec.resolved_source())
    except (ValueError, OSError):
        return None
