"""OOM back-off and per-item error isolation, with injected faults."""

import torch

from models.batching import IsolatingExecutor
from models.results import ItemResult


def _run(executor, positions, forward, widest=10):
    got: dict[int, ItemResult] = {}
    executor.run(positions, forward, got.__setitem__, widest)
    return got


def test_poison_item_fails_alone():
    def forward(pos):
        if 5 in pos:
            raise ValueError("poison")
        return [p * 10 for p in pos]

    got = _run(IsolatingExecutor(1000), list(range(16)), forward)
    assert sorted(got) == list(range(16))
    assert (
        not got[5].ok
        and got[5].error_code == "inference_error"
        and "poison" in got[5].error_message
    )
    assert all(got[i].ok and got[i].output == i * 10 for i in range(16) if i != 5)


def test_cuda_oom_halves_and_keeps_lower_budget():
    calls = []

    def forward(pos):
        calls.append(len(pos))
        if len(pos) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return list(pos)

    ex = IsolatingExecutor(max_batch_tokens=16 * 10)
    got = _run(ex, list(range(16)), forward, widest=10)
    assert all(got[i].ok for i in range(16))
    assert ex.oom_events == 3 and ex.max_batch_tokens == 40
    assert calls[0] == 16 and max(calls[1:]) <= 8


def test_single_item_oom_is_reported_not_raised():
    def forward(pos):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    got = _run(IsolatingExecutor(100), [0], forward)
    assert got[0].error_code == "out_of_memory"


def test_failed_attempt_is_freed_before_the_retry():
    """A retry must not run while the failed forward's activations are still referenced
    (through the exception's traceback): on a real GPU that made every retry run out of
    memory too, down to single items (seen on an H100 with a capped allocator)."""
    import weakref

    class Activations:
        pass

    alive: list[weakref.ref] = []
    seen_alive: list[bool] = []

    def forward(pos):
        seen_alive.append(any(r() is not None for r in alive))
        activations = Activations()  # held by this frame, as a model's tensors would be
        alive.append(weakref.ref(activations))
        if len(pos) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return list(pos)

    got = _run(IsolatingExecutor(80), list(range(8)), forward)
    assert all(got[i].ok for i in range(8))
    assert len(seen_alive) > 1 and not any(seen_alive)
