"""A real ``prefect server start`` on a free loopback port with a private PREFECT_HOME (SQLite).

The orchestration tests (a session fixture) and ``bench/estop_prefect.py`` run against it exactly as a user's
UI, CLI and workers do; ``prefect_test_harness`` is left to unit-level flow tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(home: Path, api_url: str | None = None, database_url: str | None = None) -> dict[str, str]:
    """Settings for the server and for every process that talks to it (workers, ``planar serve``, the CLI)."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url or f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_SERVER_CONCURRENCY_INITIAL_DEPLOYMENT_LEASE_DURATION": "30",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextmanager
def prefect_server(home: Path, timeout: float = 120.0, database_url: str | None = None, ui: bool = False) -> Iterator[str]:
    """Start the server, wait until /api/health answers, yield its API URL, stop it (and its children)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        # the UI (for screenshots) asks the API at PREFECT_UI_API_URL, 127.0.0.1:4200 unless told
        env={**server_env(home, database_url=database_url), "PREFECT_UI_ENABLED": str(ui).lower(), "PREFECT_UI_API_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        with open(os.devnull, "w"):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def snapshot_repository(source: Path, dest: Path) -> Path:
    """A git repository at ``dest`` holding the working tree of ``source`` as it is now (tracked and untracked,
    ignored files left out): what ``prefect.yaml``'s git_clone pull step clones, as a worker on another host would."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=source, capture_output=True, text=True, check=True)
    for rel in files.stdout.split():
        if (source / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest / rel)
    git = ["git", "-c", "user.name=planar", "-c", "user.email=planar@localhost"]
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "snapshot"]):
        subprocess.run(git + cmd, cwd=dest, check=True)
    return dest
