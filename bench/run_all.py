"""Run every benchmark (each in its own process) and write bench/RESULTS.md plus bench/results.png.

.venv/bin/python -m bench.run_all [--trace-events 10000000] [--soak-result FILE | --soak-orders 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("sandbox_rtt", []),
    ("engine_hot_path", ["--nautilus"]),  # loopback, 3 runs, with NautilusTrader's submit -> accepted beside it
    ("engine_hot_path", ["--latency", "20", "--orders", "200"]),
    ("engine_idle_cpu", []),
    ("open_orders_bench", []),
    ("estop_bench", []),
    ("engine_hot_path", ["--venue", "bybit"]),  # issue 29: the hot path and the e-stop on Bybit
    ("engine_hot_path", ["--venue", "bybit", "--latency", "20", "--orders", "200"]),
    ("estop_bench", ["--venue", "bybit"]),
    ("stop_trigger", []),
    ("startup_bench", ["--after", "clean", "--assets", "50", "200"]),  # and 0 / 1 M / 10 M trace events
    ("startup_bench", ["--after", "clean", "--assets", "1000", "--events"]),  # a sandbox of its own: a fresh request budget
    ("startup_bench", ["--after", "crash", "--assets", "50", "200", "--events", "10000000"]),  # a process killed in this boot
    ("startup_bench", ["--after", "power-loss", "--assets", "200", "--events"]),  # every asset's history
    ("budget_bench", ["--skip-load"]),  # the per-request cost; its load runs (minutes) are run by hand
    ("trace_bench", None),
    ("optimize_bench", []),  # issue 28: trials per minute with 1 and 2 workers (the year's backtest is run by hand)
]


def run_module(name: str, args: list[str]) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], capture_output=True, text=True, cwd=HERE.parent, timeout=3600)
    rows = []
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            if "figure" in row or "orders_requested" in row:
                rows.append({"bench": name, **row})
    if out.returncode != 0:
        rows.append(
            {
                "bench": name,
                "figure": f"{name} FAILED",
                "value": None,
                "baseline": None,
                "ratio": None,
                "goal": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}",
            }
        )
    return rows


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return "" if v is None else str(v)


def write(rows: list[dict], soak: dict | None) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}. Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        "with `python -m bench.run_all`. Each benchmark measures its baseline in the same run; ratio = value / baseline.",
        "",
        "| figure | this project | baseline (same run) | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        base = f"{fmt(r.get('baseline'))} ({r.get('baseline_name', '')})" if r.get("baseline") is not None else ""
        lines.append(f"| {r['figure']} | {fmt(r.get('value'))} | {base} | {fmt(r.get('ratio'))} | {r.get('goal', '')} |")
    if soak:
        lines += ["", "## Soak", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {json.dumps(v) if isinstance(v, dict) else v} |" for k, v in soak.items() if k != "bench"]
    lines += ["", "![ratios](results.png)", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plotted = [r for r in rows if isinstance(r.get("ratio"), (int, float))]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(plotted) + 1.2), dpi=100)
    ax.barh([r["figure"][:70] for r in plotted], [r["ratio"] for r in plotted])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("ratio to the in-run baseline (log)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(HERE / "results.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace-events", type=int, default=10_000_000)
    parser.add_argument("--soak-orders", type=int, default=10_000)
    parser.add_argument("--soak-result", type=Path, help="use a finished soak's JSON line instead of running it")
    parser.add_argument("--rows", type=Path, help="reuse the figures saved by an earlier run (bench/results.json)")
    args = parser.parse_args()
    rows: list[dict] = json.loads(args.rows.read_text()) if args.rows else []
    for name, extra in [] if args.rows else BENCHES:
        extra = ["--events", str(args.trace_events)] if extra is None else extra
        print(f"running {name} ...", flush=True)
        rows += run_module(name, extra)
    (HERE / "results.json").write_text(json.dumps(rows, indent=1))
    if args.soak_result:
        done = [line for line in args.soak_result.read_text().splitlines() if line.startswith('{"orders_requested"')]
        soak = json.loads(done[-1]) if done else {"status": "soak not finished when this report was written"}
    else:
        print("running soak ...", flush=True)
        found = run_module("soak", ["--orders", str(args.soak_orders)])
        soak = next((r for r in found if "orders_requested" in r), None)
    write(rows, soak)
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
