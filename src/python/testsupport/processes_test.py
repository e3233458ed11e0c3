from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from testsupport.polling import wait_for
from testsupport.processes import subprocess_env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its reaper counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_service_dies_with_a_test_process_that_is_killed() -> None:
    # A "test process" starts a service through process_under_test, then is SIGKILLed: no cleanup
    # code runs, yet the service must not outlive it.
    script = textwrap.dedent(
        """
        import sys, time
        from testsupport.processes import process_under_test
        with process_under_test([sys.executable, "-c", "import time; time.sleep(120)"]) as child:
            print(child.process.pid, flush=True)
            time.sleep(120)
        """
    )
    env = subprocess_env({})
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, parent.stderr.read() if parent.stderr else ""
        child_pid = int(line)
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: True if not _alive(child_pid) else None, what="orphan gone", timeout_s=10)
    finally:
        parent.kill()
