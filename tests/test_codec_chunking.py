"""Chunk cutting and payload codecs."""

import numpy as np
import orjson
import pytest

from core.chunking import cut_chunks
from core.codec import error_line, pack_inputs, pack_lines, result_line, unpack_inputs, unpack_lines


@pytest.mark.parametrize("n,size", [(1, 512), (512, 512), (513, 512), (1000, 300), (7, 2)])
def test_cut_chunks_covers_in_order_with_even_sizes(n, size):
    pieces = cut_chunks(list(range(n)), size)
    assert [x for p in pieces for x in p] == list(range(n))
    assert max(len(p) for p in pieces) <= size
    assert max(len(p) for p in pieces) - min(len(p) for p in pieces) <= 1


def test_cut_chunks_rejects_zero():
    with pytest.raises(ValueError):
        cut_chunks([1], 0)
    assert cut_chunks([], 5) == []


def test_inputs_and_lines_round_trip():
    recs = [(0, "a", "hello"), (1, None, "wörld \n tab\t")]
    assert unpack_inputs(pack_inputs(recs)) == recs
    vec = np.array([0.1, -2.5, 3.0], dtype=np.float32)
    lines = [result_line(0, "a", vec), error_line(1, None, "input_too_long", "too long")]
    back = list(unpack_lines(pack_lines(lines)))
    assert all(b.endswith(b"\n") for b in back)
    first, second = (orjson.loads(b) for b in back)
    assert first == {"custom_id": "a", "index": 0, "output": [0.1, -2.5, 3.0]}
    assert second["error"] == {"code": "input_too_long", "message": "too long"}
