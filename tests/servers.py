"""Start a `llamafactory-cli` server on a free 127.0.0.1 port for a test, and always stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from lfcli import CLI, REPO_ROOT, lf_env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-4000:] if log.exists() else ""


@contextlib.contextmanager
def lf_server(
    args: list[str],
    log: Path,
    ready_url: str,
    env: dict[str, str],
    cwd: Path = REPO_ROOT,
    headers: dict[str, str] | None = None,
    timeout: float = 240.0,
) -> Iterator[subprocess.Popen]:
    """`llamafactory-cli ARGS` in its own process group until `ready_url` answers; killed, with children, on exit."""
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [str(CLI), *args], cwd=cwd, env=lf_env(log.parent, **env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llamafactory-cli {' '.join(args)} exited {proc.returncode} before serving:\n{_tail(log)}")
            try:
                request = urllib.request.Request(ready_url, headers=headers or {})
                with urllib.request.urlopen(request, timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer from {ready_url} within {timeout:.0f} s:\n{_tail(log)}")
            time.sleep(1.0)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
