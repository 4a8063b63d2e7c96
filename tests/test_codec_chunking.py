"""Chunk cutting and payload codecs."""

import numpy as np
import orjson
import pytest

from core.chunking import cut_chunks
from core.codec import pack_inputs, pack_lines, unpack_inputs, unpack_lines
from core.result_lines import error_line, result_line


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


def test_bucket_chunks_sorts_within_windows_and_keeps_each_chunk_in_order():
    import random

    from core.chunking import bucket_chunks

    rng = random.Random(1)
    lengths = [rng.choice([5, 10, 400, 800]) for _ in range(1000)]
    plan = bucket_chunks(list(range(1000)), lengths, chunk_size=50, window=300)
    flat = sorted(p for _, positions in plan for p in positions)
    assert flat == list(range(1000))
    for bucket, positions in plan:
        assert positions == sorted(positions)
        assert {p // 300 for p in positions} == {bucket}  # never crosses its window
    # A chunk is a run of the window sorted by length: at most two adjacent lengths here.
    assert all(len({lengths[p] for p in ps}) <= 2 for _, ps in plan)

    def padded(chunks):
        return sum(len(ps) * max(lengths[p] for p in ps) for ps in chunks)

    arrival = [list(range(i, i + 50)) for i in range(0, 1000, 50)]
    assert padded([ps for _, ps in plan]) < 0.7 * padded(arrival)
    assert [b for b, _ in plan] == sorted(b for b, _ in plan)


def test_bucket_chunks_without_lengths_keeps_input_order():
    from core.chunking import bucket_chunks

    plan = bucket_chunks(list(range(10)), [0] * 10, chunk_size=4, window=4)
    assert [ps for _, ps in plan] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_merge_in_order():
    from core.codec import merge_in_order, pack_indices

    a = ([1, 4, 5], [b"one", b"four", b"five"])
    b = ([0, 2, 3], [b"zero", b"two", b"three"])
    blobs = [(pack_lines(lines), pack_indices(idx)) for idx, lines in (a, b)]
    assert b"".join(merge_in_order(blobs)).split() == [
        b"zero",
        b"one",
        b"two",
        b"three",
        b"four",
        b"five",
    ]


def test_lines_packed_on_zstd_threads_read_back_the_same():
    """GPU workers compress result blobs on zstd's own threads; the frames must read back
    exactly, across the several jobs a large blob is split into."""
    rng = np.random.default_rng(3)
    lines = [
        result_line(i, f"id-{i}", rng.standard_normal(384).astype(np.float32))
        for i in range(1500)  # about 7 MB of lines: more than one zstd job
    ]
    threaded = pack_lines(lines, threads=2)
    assert [b.rstrip(b"\n") for b in unpack_lines(threaded)] == lines
    assert len(threaded) < sum(map(len, lines)) / 2


def test_chunks_are_cut_at_max_bytes_of_input_whatever_their_count():
    from core.chunking import bucket_chunks, split_by_size

    assert split_by_size([0, 1, 2, 3, 4], [5, 5, 5, 50, 5], 12) == [[0, 1], [2], [3], [4]]
    sizes = [1000 + 37 * (i % 11) for i in range(500)]  # images of about a kilobyte
    plan = bucket_chunks(
        list(range(500)), sizes, chunk_size=200, window=500, sizes=sizes, max_size=8000
    )
    assert sorted(p for _, chunk in plan for p in chunk) == list(range(500))
    assert all(sum(sizes[p] for p in chunk) <= 8000 for _, chunk in plan)
    assert max(len(chunk) for _, chunk in plan) >= 6  # cut by bytes, not one item a chunk
    without = bucket_chunks(list(range(500)), sizes, chunk_size=200, window=500)
    assert max(sum(sizes[p] for p in chunk) for _, chunk in without) > 8000  # the cap acts


def test_an_ingest_window_closes_at_its_byte_bound():
    from core.contracts.items import ItemLimits
    from core.submit.file_chunks import ChunkBuilder, IngestSettings

    def builder(window_bytes: int | None) -> ChunkBuilder:
        return ChunkBuilder(
            IngestSettings(
                model="m",
                task="embed",
                limits=ItemLimits(100_000, 100),
                chunk_size=lambda: 1000,
                window=10_000,
                skip_invalid=False,
                max_errors=10,
                max_items=10**6,
                window_bytes=window_bytes,
            )
        )

    lines = [(n + 1, orjson.dumps({"input": "x" * 1000})) for n in range(100)]
    bounded, unbounded = builder(10_000), builder(None)
    windows = [rows for rows in bounded.feed(lines) if rows]
    assert bounded.finish() == []  # the tenth window closed on its last line
    assert len(windows) == 10 and all(sum(r["n_items"] for r in w) == 10 for w in windows)
    assert [rows for rows in unbounded.feed(lines) if rows] == []  # one window, at the end
    assert sum(r["n_items"] for r in unbounded.finish()) == 100
