"""The report's numbers (trace/report.py, trace/analysis.py) read back from the files it writes: the summary's final
equity is the equity chart's last point and the trace's last equity; realised PnL in the summary is the sum of the
trade list's column and of the per-symbol table's; a known drawdown comes out; replay rebuilds the basis."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from planar_core.model import Side
from planar_core.model.pnl import Basis
from planar_core.trace import EventTrace
from planar_core.trace.analysis import analyze_trading_events
from planar_core.trace.reading import read_trace
from planar_core.trace.replay import replay_from_trace
from planar_core.trace.report import write_report

FILLS = [  # symbol, side, amount, price, fee (quote)
    ("BTC/USDT", "buy", 1.0, 100.0, 0.1),
    ("BTC/USDT", "buy", 1.0, 120.0, 0.12),
    ("ETH/USDT", "buy", 10.0, 10.0, 0.1),
    ("BTC/USDT", "sell", 2.0, 130.0, 0.26),  # +40: a winning round trip
    ("ETH/USDT", "sell", 5.0, 9.0, 0.045),  # -5
    ("LTC/USDT", "sell", 3.0, 50.0, 0.15),  # coins held before: realised PnL not known
    ("ETH/USDT", "sell", 5.0, 10.5, 0.0525),  # +2.5: the ETH round trip loses 2.5
    ("BTC/USDT", "buy", 1.0, 100.0, 0.1),
    ("BTC/USDT", "sell", 0.5, 110.0, 0.055),  # +5, and the position stays open: no round trip
]
EQUITY = [1000.0, 1100.0, 990.0, 1050.0, 1046.0]


def record_session(et: EventTrace) -> dict[str, Basis]:
    """Fills recorded as the engine records them (engine/updates.py), with risk monitor samples between them."""
    bases: dict[str, Basis] = {}
    for i, (symbol, side, amount, price, fee) in enumerate(FILLS):
        if i < len(EQUITY):
            et.record("risk_metrics", payload={"equity": EQUITY[i], "total_exposure": 0.5})
        b = bases.setdefault(symbol, Basis(symbol, True))
        r = b.apply(Side(side), amount, price, i, fee)
        cid, tid = f"me-e1-{i}", f"t{i}"
        et.record("order_placed", client_order_id=cid, symbol=symbol, side=side, amount=amount, expected_price=price)
        et.record(
            "trade_executed",
            client_order_id=cid,
            symbol=symbol,
            trade_id=tid,
            side=side,
            amount=amount,
            price=price,
            fee=fee,
            fee_currency="USDT",
            realized_pnl=r.pnl,
            unmatched=r.unmatched or None,
            basis=r.basis,
        )
        if r.closed is not None:
            et.record("round_trip", client_order_id=cid, symbol=symbol, trade_id=tid, **r.closed.fields())
    return bases


def test_the_reports_numbers_agree_with_each_other_and_the_trace(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path / "trace")) as et:
        record_session(et)
        files = write_report(analyze_trading_events(et), tmp_path / "report", currency="USDT", title="session")
    summary = json.loads(files["summary"].read_text(), parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    trades = pd.read_csv(files["trades"])
    symbols = pd.read_csv(files["symbols"])
    trips = pd.read_csv(files["round_trips"])
    equity = pd.read_csv(files["equity_csv"])
    df = read_trace(str(tmp_path / "trace"))
    traced = [p["payload"]["equity"] for p in df.loc[df["kind"] == "risk_metrics", "payload"]]

    assert summary["final_equity"] == equity["equity"].iloc[-1] == traced[-1] == 1046.0
    assert summary["initial_equity"] == 1000.0 and summary["return"] == pytest.approx(0.046)
    assert summary["realized_pnl"] == pytest.approx(trades["realized_pnl"].sum()) == pytest.approx(symbols["realized_pnl"].sum())
    assert summary["realized_pnl"] == pytest.approx(42.5)
    assert summary["fees"] == pytest.approx(sum(f[4] for f in FILLS)) == pytest.approx(trades["fee_quote"].sum())
    assert summary["trades"] == len(trades) == len(FILLS) and summary["unknown_pnl_fills"] == 1
    assert (summary["round_trips"], summary["win_rate"]) == (2, 0.5) and len(trips) == 2
    assert trips.set_index("symbol")["realized_pnl"].to_dict() == {"BTC/USDT": pytest.approx(40.0), "ETH/USDT": pytest.approx(-2.5)}
    eth = symbols.set_index("symbol").loc["ETH/USDT"]
    assert (eth["trades"], eth["bought"], eth["sold"], eth["volume"]) == (3, 10.0, 10.0, pytest.approx(100 + 45 + 52.5))
    assert eth["win_rate"] == 0.0 and symbols.set_index("symbol").loc["BTC/USDT", "win_rate"] == 1.0
    assert symbols.set_index("symbol").loc["BTC/USDT", "realized_pnl"] == pytest.approx(45.0)
    html = files["html"].read_text()
    assert all(h in html for h in ("Per symbol", "Round trips", "Trades", "drawdown.png", "equity.png"))
    assert all(files[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for k in ("equity", "drawdown", "pnl"))


def test_a_backtests_trace_read_into_a_dataframe_gives_the_same_report(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path / "trace")) as et:
        record_session(et)
        live = write_report(analyze_trading_events(et), tmp_path / "live")
    files = write_report(read_trace(str(tmp_path / "trace")), tmp_path / "backtest", title="backtest")
    assert json.loads(files["summary"].read_text()) == json.loads(live["summary"].read_text())


def test_a_known_drawdown(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path / "trace")) as et:
        for equity in (100.0, 120.0, 90.0, 110.0, 130.0, 117.0):
            et.record("risk_metrics", payload={"equity": equity})
        files = write_report(analyze_trading_events(et), tmp_path / "report")
    summary = json.loads(files["summary"].read_text())
    assert summary["max_drawdown"] == pytest.approx(0.25) and summary["max_drawdown_abs"] == pytest.approx(30.0)
    assert pd.read_csv(files["equity_csv"])["drawdown"].tolist() == pytest.approx([0, 0, 0.25, 10 / 120, 0, 0.1])
    assert summary["realized_pnl"] == 0.0 and summary["win_rate"] is None and summary["round_trips"] == 0


def test_replay_rebuilds_the_basis_and_the_round_trips(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path / "trace")) as et:
        bases = record_session(et)
        state = replay_from_trace(et)
    assert state.basis == {sym: b.snapshot() for sym, b in bases.items()}
    assert state.trades["realized_pnl"].sum() == pytest.approx(42.5) and state.trades["realized_pnl"].isna().sum() == 1
    assert state.round_trips["realized_pnl"].tolist() == pytest.approx([40.0, -2.5])
