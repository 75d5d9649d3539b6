"""Start, find and stop one server process by its pid file.

There is no systemd or Docker here, so each service is a detached process group we own: started
with its output in a log file, recorded in a pid file, stopped with SIGTERM and, after a grace
period, SIGKILL to the whole group.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class ServiceError(RuntimeError):
    """A service could not be provisioned or started; the message says which and why."""


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _started(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): a pid reused after a reboot has another."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError):
        return None


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is still alive (the same process, not a reuse of its
    pid by another after a reboot), else None."""
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    if len(fields) > 1 and _started(pid) not in (None, fields[1]):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie is not alive: it only waits for its parent to reap it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return None
    except (FileNotFoundError, IndexError):
        return None
    return pid


def spawn(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start ``argv`` in its own session with stdout+stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_file, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            user=user,
        )
    pid_file.write_text(f"{proc.pid} {_started(proc.pid) or ''}".strip())
    return proc.pid


def stop(pid_file: Path, *, grace: float = 60.0) -> bool:
    """SIGTERM the process group in ``pid_file``, SIGKILL it after ``grace`` seconds.

    Returns True if something was running.
    """
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if read_pid(pid_file) is None:
            break
        time.sleep(0.2)
    else:
        _signal_group(pid, signal.SIGKILL)
        time.sleep(0.5)
    pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` of a log file, for error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log file at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    alive: Callable[[], bool],
    what: str,
    log_file: Path,
) -> None:
    """Poll ``check`` until it holds; fail fast with the log's tail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise ServiceError(
                f"{what} exited during start-up. Last lines of {log_file}:\n{tail(log_file)}"
            )
        time.sleep(0.5)
    raise ServiceError(
        f"{what} did not become healthy within {timeout:.0f}s. Last lines of {log_file}:\n"
        f"{tail(log_file)}"
    )
