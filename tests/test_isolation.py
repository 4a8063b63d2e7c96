"""An input that kills its worker, on both databases: while the model's other chunks
succeed, the chunk holding it is split after each run of deaths until the input is alone;
then it fails alone (attempts_exhausted) and every other item completes. A worker that
dies on everything fails the chunk whole instead of splitting it."""

import time

import orjson
from sqlalchemy import select

from core import states
from core.codec import unpack_lines
from core.db import read_session, write_session
from core.store.sweep import SPLIT, sweep_expired
from core.tables import Chunk, Job
from tests.test_store import _complete, _dispatch, _job, _start

MAX_ATTEMPTS = 3


def _run_until_done(db, job_ids, poison: set[int], limit: int = 200) -> int:
    """Run chunks as a worker would, dying (its lease left to lapse) on any chunk that
    holds a poison index; returns how many times the worker died."""
    deaths = 0
    for _ in range(limit):
        sent = _dispatch(db, 1)
        if not sent:
            with read_session(db) as s:
                if all(s.get(Job, j).status == states.COMPLETED for j in job_ids):
                    return deaths
            with write_session(db) as s:  # later: the dead worker's leases have lapsed
                sweep_expired(session=s, now=time.time() + 5, max_attempts=MAX_ATTEMPTS)
            continue
        work = _start(db, sent[0], lease=1.0)
        assert work is not None
        if poison & {r[0] for r in work.records}:
            deaths += 1  # killed mid-chunk: nothing recorded, the lease lapses
        else:
            assert _complete(db, work)
    raise AssertionError("the job never finished")


def test_a_killing_input_ends_up_failing_alone(db_url):
    job_id = _job(db_url, n=64, chunk_size=16)
    deaths = _run_until_done(db_url, [job_id], poison={37})
    with read_session(db_url) as s:
        job = s.get(Job, job_id)
        assert (job.completed, job.failed) == (63, 1)
        failed = [
            orjson.loads(line)
            for blob in s.scalars(select(Chunk.outputs).where(Chunk.job_id == job_id))
            for line in unpack_lines(blob or b"")
            if b'"error"' in line
        ]
    assert [(f["index"], f["error"]["code"]) for f in failed] == [(37, "attempts_exhausted")]
    # Three deaths on the chunk of 16, then one on each half holding it: 8, 4, 2, 1.
    assert deaths == MAX_ATTEMPTS + 4


def test_a_worker_dying_on_everything_fails_chunks_whole(db_url):
    job_id = _job(db_url, n=8, chunk_size=8)
    deaths = _run_until_done(db_url, [job_id], poison=set(range(8)))
    assert deaths == MAX_ATTEMPTS  # no split: nothing of the model succeeded lately
    with read_session(db_url) as s:
        job = s.get(Job, job_id)
        assert (job.completed, job.failed) == (0, 8)


def test_split_is_counted_and_keeps_token_counts(db_url):
    job_id = _job(db_url, n=4, chunk_size=4)
    other = _job(db_url, tenant="zed", n=1, chunk_size=1)
    for _ in range(MAX_ATTEMPTS):
        sent = _dispatch(db_url, 2)
        for d in sent:
            work = _start(db_url, d, lease=1.0)
            if work.job_id == other:
                time.sleep(0.01)
                _complete(db_url, work)
        with write_session(db_url) as s:
            moved = sweep_expired(session=s, now=time.time() + 5, max_attempts=MAX_ATTEMPTS)
    assert moved.get(SPLIT) == 1
    with read_session(db_url) as s:
        chunks = s.execute(
            select(Chunk.n_items, Chunk.attempts, Chunk.status).where(Chunk.job_id == job_id)
        ).all()
        assert sorted(chunks) == [(2, 2, "pending"), (2, 2, "pending")]
        assert s.get(Job, job_id).chunk_count == 2
