"""`sluice workers`: GPU lists and the supervision loop, with fake processes."""

import subprocess
import sys

import pytest

from worker.supervisor import GpuSpecError, Supervisor, parse_gpus, worker_command


def test_parse_gpus():
    assert parse_gpus("0,1") == [0, 1]
    assert parse_gpus(" 3 ") == [3]
    assert parse_gpus("all", available=lambda: [0, 1, 2, 3]) == [0, 1, 2, 3]
    for bad in ("", "a", "0,0", "-1", "1;2"):
        with pytest.raises(GpuSpecError):
            parse_gpus(bad)
    with pytest.raises(GpuSpecError, match="no GPU found"):
        parse_gpus("all", available=list)


def test_worker_command_pins_each_gpu():
    cmd = worker_command(2, "a,b", 4)
    assert cmd[-6:] == ["--gpu", "2", "--models", "a,b", "--threads", "4"]


class FakeProc:
    pid = 1

    def __init__(self, code=None):
        self.returncode = code

    def poll(self):
        return self.returncode


def test_restarts_a_dead_worker_then_gives_up_on_a_crash_loop():
    spawned = []

    def spawn(cmd):
        spawned.append(cmd)
        return FakeProc(code=1)  # every process dies at once

    now = [0.0]
    sup = Supervisor(
        {0: ["w0"], 1: ["w1"]}, max_crashes=3, window_seconds=60, spawn=spawn, clock=lambda: now[0]
    )
    sup.start()
    assert sup.poll_once() and sup.poll_once()  # restarted twice each
    assert not sup.poll_once()  # third crash in the window: both given up
    assert len(spawned) == 2 + 2 + 2


def test_a_healthy_worker_is_left_alone_and_old_crashes_age_out():
    healthy = Supervisor({0: ["w0"]}, spawn=lambda cmd: FakeProc(code=None), clock=lambda: 0.0)
    healthy.start()
    assert healthy.poll_once() and healthy.children[0].crashes == []

    now = [0.0]
    spawned = []

    def spawn(cmd):
        spawned.append(now[0])
        return FakeProc(code=1)

    sup = Supervisor(
        {0: ["w0"]}, max_crashes=2, window_seconds=10, spawn=spawn, clock=lambda: now[0]
    )
    sup.start()
    for t in (0.0, 20.0, 40.0):  # one crash every 20s never makes 2 within 10s
        now[0] = t
        assert sup.poll_once()
    now[0] = 45.0  # a second crash 5s after the last: given up
    assert not sup.poll_once()
    assert spawned == [0.0, 0.0, 20.0, 40.0]


def test_cli_reports_missing_gpus():
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "workers", "--gpus", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--gpus" in out.stderr
