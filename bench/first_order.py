"""``planar run`` from a shell prompt to its first order on the exchange, against a client that does nothing else.

Each side runs in a block of its own, against the same sandbox, each run on a fresh account and a fresh store:

* **cold**: no Prefect server answers; ``planar run`` starts the local one in the background (flows/prefect_api.py);
* **warm**: the local server answers (started by the cold run): the usual case on a desk's machine;
* **temporary**: ``--temporary-server``, Prefect's own default (a server started and stopped by each run);
* **baseline**: a fresh Python process that imports ccxt, points it at the sandbox and places one post-only
  order: what any client pays to get an order out of a new process.

The time is the sandbox's creation time of the run's first order minus the moment the process was spawned (both
wall clock, one machine). The strategy is examples/grid_maker.toml (its first orders come from ``on_start``).

    python -m bench.first_order [--warm 5] [--temporary 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .common import figure, median, sandbox_process

ROOT = Path(__file__).resolve().parent.parent
PLANAR = str(Path(sys.executable).parent / "planar")
BASELINE = """
import sys, ccxt
from planar_core.exchange.endpoints import point_at_sandbox
ex = point_at_sandbox(ccxt.binance({"apiKey": sys.argv[3], "secret": sys.argv[4]}), sys.argv[1], sys.argv[2])
price = ex.fetch_ticker("BTC/USDT")["last"]
ex.create_order("BTC/USDT", "limit", "buy", 0.002, round(price * 0.99, 2), {"postOnly": True})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin(url: str, name: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{url}/admin/{name}", data=data, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        out: dict[str, object] = json.loads(r.read())
        return out


def first_order_ms(url: str, api_key: str) -> int | None:
    accounts = admin(url, "snapshot")["accounts"]
    assert isinstance(accounts, dict)
    orders = accounts[api_key]["open_orders"]
    return min((int(o["created"]) for o in orders), default=None)


class Bench:
    def __init__(self, info: dict[str, object], work: Path) -> None:
        self.url, self.ws = str(info["url"]), str(info["ws_url"])
        self.work = work
        text = (ROOT / "examples" / "grid_maker.toml").read_text()
        self.config = work / "grid_maker.toml"
        self.config.write_text(re.sub(r'(ws_)?url = "[a-z]+://127\.0\.0\.1:\d+"', self._endpoint, text))
        self.env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        self.env.update(PREFECT_HOME=str(work / "prefect-home"), PLANAR_PREFECT_PORT=str(free_port()))
        self.n = 0

    def _endpoint(self, m: re.Match[str]) -> str:
        return f'ws_url = "{self.ws}"' if m.group(1) else f'url = "{self.url}"'

    def account(self) -> tuple[str, str]:
        acct = admin(self.url, "accounts", {"balances": {"USDT": 10_000, "BTC": 0.05}})
        return str(acct["api_key"]), str(acct["api_secret"])

    def timed(self, argv: list[str], key: str, env: dict[str, str]) -> float:
        t0 = time.time()
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=self.work)
        first = first_order_ms(self.url, key)
        if first is None:
            raise RuntimeError(f"no order from {argv[:3]}: {out.stdout[-1500:]} {out.stderr[-1500:]}")
        return first / 1000 - t0

    def planar(self, *extra: str) -> float:
        self.n += 1
        key, secret = self.account()
        env = {**self.env, "PLANAR_DEMO_API_KEY": key, "PLANAR_DEMO_API_SECRET": secret, "PLANAR_HOME": str(self.work / f"home{self.n}")}
        return self.timed([PLANAR, "run", str(self.config), "--duration", "2", *extra], key, env)

    def baseline(self) -> float:
        key, secret = self.account()
        return self.timed([sys.executable, "-c", BASELINE, self.url, self.ws, key, secret], key, self.env)

    def stop_server(self) -> None:
        pid_file = Path(self.env["PREFECT_HOME"]) / "server.pid"
        if pid_file.exists() and pid_file.read_text().strip():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm", type=int, default=5)
    p.add_argument("--temporary", type=int, default=2)
    a = p.parse_args()
    with sandbox_process("--balance", "USDT=10000,BTC=0.05,ETH=0.5") as info, tempfile.TemporaryDirectory() as tmp:
        b = Bench(info, Path(tmp))
        try:
            cold = b.planar()  # starts the local server
            warm = [b.planar() for _ in range(a.warm)]
            base = [b.baseline() for _ in range(a.warm)]
            temporary = [b.planar("--temporary-server") for _ in range(a.temporary)]
        finally:
            b.stop_server()
        ref = median(base)
        figure(
            "planar run -> first order, local server up (s, median)",
            median(warm),
            ref,
            "fresh process + ccxt order",
            "<= 5 s",
            runs=[round(x, 2) for x in warm],
            baseline_runs=[round(x, 2) for x in base],
        )
        figure(
            "planar run -> first order, local server started by the run (s)", cold, ref, "fresh process + ccxt order", "once per machine"
        )
        figure(
            "planar run --temporary-server -> first order (s, median)",
            median(temporary),
            ref,
            "fresh process + ccxt order",
            "Prefect's default, for comparison",
            runs=[round(x, 2) for x in temporary],
        )


if __name__ == "__main__":
    main()
