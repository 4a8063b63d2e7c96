"""Job and chunk state machines."""

from core import states as s


def test_job_finishes_when_no_chunk_is_open():
    assert s.job_status_after_chunks(s.IN_PROGRESS, {s.C_DONE: 3}) == s.COMPLETED
    assert s.job_status_after_chunks(s.IN_PROGRESS, {s.C_DONE: 2, s.C_FAILED: 1}) == s.COMPLETED
    assert s.job_status_after_chunks(s.IN_PROGRESS, {s.C_DONE: 2, s.C_PENDING: 1}) == s.IN_PROGRESS


def test_queued_job_moves_to_in_progress_once_a_chunk_starts():
    assert s.job_status_after_chunks(s.QUEUED, {s.C_PENDING: 3}) == s.QUEUED
    assert s.job_status_after_chunks(s.QUEUED, {s.C_QUEUED: 3}) == s.QUEUED
    assert s.job_status_after_chunks(s.QUEUED, {s.C_RUNNING: 1, s.C_PENDING: 2}) == s.IN_PROGRESS


def test_cancelling_job_ends_cancelled_once_running_chunks_stop():
    assert (
        s.job_status_after_chunks(s.CANCELLING, {s.C_RUNNING: 1, s.C_CANCELLED: 4}) == s.CANCELLING
    )
    assert s.job_status_after_chunks(s.CANCELLING, {s.C_DONE: 1, s.C_CANCELLED: 4}) == s.CANCELLED


def test_terminal_job_never_moves():
    for status in s.JOB_TERMINAL:
        assert s.job_status_after_chunks(status, {s.C_PENDING: 1}) == status
        assert not s.JOB_TRANSITIONS[status]


def test_expired_lease_targets():
    kw = {"max_attempts": 3, "job_cancelling": False}
    assert s.expired_lease_target(status=s.C_RUNNING, attempts=1, **kw) == s.C_PENDING
    assert s.expired_lease_target(status=s.C_RUNNING, attempts=3, **kw) == s.C_FAILED
    # A queued chunk whose message was lost never ran: no attempt is charged.
    assert s.expired_lease_target(status=s.C_QUEUED, attempts=3, **kw) == s.C_PENDING
    assert (
        s.expired_lease_target(status=s.C_RUNNING, attempts=1, max_attempts=3, job_cancelling=True)
        == s.C_CANCELLED
    )


def test_transition_tables_are_closed():
    for table, valid in (
        (s.JOB_TRANSITIONS, set(s.JOB_STATUSES)),
        (s.CHUNK_TRANSITIONS, set(s.CHUNK_TRANSITIONS)),
    ):
        for src, targets in table.items():
            assert src in valid and targets <= valid
    assert s.can_transition(s.C_PENDING, s.C_QUEUED, table=s.CHUNK_TRANSITIONS)
    assert not s.can_transition(s.C_DONE, s.C_PENDING, table=s.CHUNK_TRANSITIONS)
