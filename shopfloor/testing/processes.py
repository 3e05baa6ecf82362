"""Stop a child process the way a user does: Ctrl-C, then wait; kill only if it hangs."""

from __future__ import annotations

import signal
import subprocess


def interrupt(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> tuple[int, str]:
    """Send SIGINT and wait; returns (exit code, everything it printed)."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, (out or b"").decode(errors="replace")
