"""The Prefect API ``planar run`` reports to, found without putting a server start on the path to the first order.

Prefect's own default, a temporary server started by each run and stopped at its end, costs 3.6-4 s before the
flow begins and keeps nothing: the run cannot be looked at afterwards. ``planar run`` instead uses, in order:

1. the API the user configured (``PREFECT_API_URL``, in the environment or the Prefect profile): a team server;
2. the local server on 127.0.0.1:``PLANAR_PREFECT_PORT`` (4200, Prefect's default, so the UI is where people
   look for it) when it answers;
3. otherwise it starts that server in the background and waits for it once; it stays for the next runs, whose
   first order then waits for no server at all, and its UI shows every run. Its pid is in Prefect's pid file, so
   ``prefect server stop`` stops it. Not ``prefect server start --background``: that leaves the server writing
   to pipes nobody reads, in the terminal's process group (a Ctrl-C on the run would kill it);
4. ``--temporary-server`` (or a port 4200 that something else holds): Prefect's temporary server, as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 4200
PID_FILE = "server.pid"  # prefect.cli._server_utils.SERVER_PID_FILE_NAME
LOG = "planar-server.log"  # the launcher's output, in PREFECT_HOME


class LocalServerError(Exception):
    """The local server could not be started or did not answer in time (one line, for the CLI)."""


def healthy(api_url: str, timeout: float = 0.5) -> bool:
    """The API answers its health check (a plain GET: no Prefect client, nothing imported)."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def port_taken(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class PrefectApi:
    """Where the run reports: ``url`` (None: Prefect's temporary server), and the server being started, if any."""

    url: str | None
    pending: bool = False  # a server is starting: ``wait`` before the flow
    launcher: subprocess.Popen[bytes] | None = None  # our ``prefect server start --background``, if we started it
    log: Path | None = None
    note: str = ""  # what the user should know (a server started for them, a fallback), one line

    def wait(self, timeout: float = 90.0) -> None:
        """Until the server started for this run answers; a server that exits or never answers is one line."""
        if not self.pending or self.url is None:
            return
        deadline = time.monotonic() + timeout
        while not healthy(self.url):
            code = self.launcher.poll() if self.launcher is not None else None
            if code is not None:  # the server process ended
                raise LocalServerError(f"the local Prefect server did not start ({self._tail()}); see {self.log}")
            if time.monotonic() > deadline:
                raise LocalServerError(f"the local Prefect server at {self.url} did not answer within {timeout:.0f}s; see {self.log}")
            time.sleep(0.1)

    def _tail(self) -> str:
        text = self.log.read_text(errors="replace").strip() if self.log is not None and self.log.exists() else ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return lines[-1][:200] if lines else f"exit {self.launcher.returncode if self.launcher else '?'}"


def find_api(temporary: bool = False) -> PrefectApi:
    """The API the run uses (see the module); starts the local server in the background when none answers."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    configured = settings.api.url
    if configured:
        return PrefectApi(configured)
    if temporary:
        return PrefectApi(None)
    port = int(os.environ.get("PLANAR_PREFECT_PORT") or DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}/api"
    if healthy(url):
        return PrefectApi(url)
    home = Path(settings.home).expanduser()
    pid_file = home / PID_FILE
    if pid_file.exists() and not _alive(pid_file):  # left by a server that died: Prefect would refuse to start
        pid_file.unlink(missing_ok=True)
    elif pid_file.exists():  # another `planar run` started it a moment ago: wait for that one
        return PrefectApi(url, pending=True, log=home / LOG, note=f"waiting for the local Prefect server at {url} (another run starts it)")
    if port_taken(port):
        return PrefectApi(None, note=f"port {port} is held by something that is not a Prefect API; using a temporary server")
    home.mkdir(parents=True, exist_ok=True)
    try:
        pid_file.touch(mode=0o600, exist_ok=False)  # taken first: a second run at the same moment waits for this one
    except FileExistsError:
        return PrefectApi(url, pending=True, log=home / LOG, note=f"waiting for the local Prefect server at {url} (another run starts it)")
    log = home / LOG
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    with log.open("ab") as out:
        proc = subprocess.Popen(  # its own session: a Ctrl-C on this run does not reach it; its output in the log file
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false")},
        )
    pid_file.write_text(str(proc.pid))  # where `prefect server stop` looks
    ui = url.removesuffix("/api")
    note = f"started a local Prefect server at {ui} (once: it stays for the next runs, its UI shows them; `prefect server stop` stops it)"
    return PrefectApi(url, True, proc, log, note)


def _alive(pid_file: Path) -> bool:
    text = pid_file.read_text().strip()
    if not text:  # taken by a run that is starting the server this moment
        return True
    try:
        os.kill(int(text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
