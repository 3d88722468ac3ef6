"""Child processes of the test control plane: loopback ports, a log file each,
gone with the Python that started them."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.kube.binaries import ControlPlaneError
from tests.loopback import free_port


def die_with_parent() -> None:
    # Linux: SIGTERM the child when the Python that started it dies, so a
    # killed test run leaves no apiserver or etcd behind.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it is true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class LoggedProcess:
    """A child process with its log in a file, stopped gently then firmly."""

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # Ctrl-C reaches us, we stop children in order
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ensure_alive(self) -> None:
        if not self.alive():
            raise ControlPlaneError(
                f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def serve_until_stopped(processes: Callable[[], Sequence[LoggedProcess]]) -> int:
    """Block until Ctrl-C or SIGTERM (0), or until one of `processes` dies (1)."""
    # Block the stop signals and wait for them: wakes at once on Ctrl-C,
    # and once a second to notice a crashed child.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    while signal.sigtimedwait(stop_signals, 1) is None:
        for proc in processes():
            if not proc.alive():
                print(f"{proc.name} died:\n{proc.tail()}", file=sys.stderr)
                return 1
    print("stopping", flush=True)
    return 0
