from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.processes.run_state import (
    ProcessRecord,
    RunRecord,
    RunState,
    group_alive,
    kill_group,
    live_members,
    pid_alive,
)
from testsupport.polling import wait_for

# A leader with a child of its own, in a new process group: what a service with workers is.
_FAMILY = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def family() -> Iterator[subprocess.Popen[str]]:
    leader = subprocess.Popen(
        [sys.executable, "-c", _FAMILY], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None and leader.stdout.readline().strip() == "ready"
    try:
        yield leader
    finally:
        if group_alive(leader.pid):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=10)


def _until(condition: Callable[[], bool], what: str) -> None:
    wait_for(lambda: True if condition() else None, what=what, timeout_s=10.0)


def test_a_group_is_alive_while_any_member_runs(family: subprocess.Popen[str]) -> None:
    assert pid_alive(family.pid)
    _until(lambda: len(live_members(family.pid)) == 2, "leader and child running")
    assert group_alive(family.pid)


def test_killed_members_count_as_gone_before_they_are_reaped(
    family: subprocess.Popen[str],
) -> None:
    record = ProcessRecord.of("svc", family.pid, family.pid, "-c")
    assert kill_group(record)
    # The leader is our child and not reaped yet: a zombie, which runs nothing.
    _until(lambda: not group_alive(family.pid), "the group gone")
    assert not pid_alive(family.pid)
    assert not kill_group(record)  # nothing left to signal


def test_a_recycled_pid_is_never_signalled(family: subprocess.Popen[str]) -> None:
    ours = ProcessRecord.of("svc", family.pid, family.pid, "-c")
    # The pid is the record's, but the command line or the start time is not: a stranger.
    other_command = replace(ours, command="-m moshi_backend")
    started_earlier = replace(ours, started_at=ours.started_at - 60 if ours.started_at else 0)
    no_start_time = replace(ours, started_at=None)
    for stranger in (other_command, started_earlier, no_start_time):
        assert not kill_group(stranger), stranger
    assert group_alive(family.pid) and family.poll() is None


def test_an_unknown_pid_is_not_alive() -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(timeout=10)
    assert not pid_alive(finished.pid)
    assert pid_alive(os.getpid())


def test_the_record_survives_a_round_trip_and_a_torn_file_is_none(tmp_path: Path) -> None:
    state = RunState(tmp_path, "proj")
    record = RunRecord("s1", 123, [ProcessRecord("frontend", 5, 5, "-m frontend", 1700000000.25)])
    record.endpoints["frontend"] = "http://127.0.0.1:8010"
    state.save(record)
    assert state.load() == record
    state.path.write_text('{"session": ')
    assert state.load() is None
    state.clear()
    assert state.load() is None
