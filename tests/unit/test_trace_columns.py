"""Schema-2 event columns (trace/columns.py) without a store: events encoded and read back, dictionaries, absent
fields, mixed shapes, selections, concatenation and pruning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from planar_core.trace.columns import NUMBERS, TEXT, Columns

T = 1_700_000_000_000_000_000  # ns


def events() -> list[dict[str, object]]:
    return [
        {"timestamp": T + 3, "kind": "order_filled", "symbol": "BTC/USDT", "client_order_id": "a-1", "filled": 0.5, "note": "x"},
        {"timestamp": T + 1, "kind": "order_placed", "symbol": "BTC/USDT", "client_order_id": "a-1", "amount": 0.5, "price": 100.0},
        {"timestamp": T + 2, "kind": "ticker", "symbol": "ETH/USDT", "price": "2.5", "timeframe": "1m"},
        {"timestamp": T + 4, "kind": "balance_updated", "payload": {"USDT": {"free": 1.0, "used": 0.0, "total": 1.0}}},
    ]


def test_rows_come_out_in_timestamp_order_across_shapes() -> None:
    c = Columns.from_events(events())
    assert c.timestamp.tolist() == [T + 1, T + 2, T + 3, T + 4]
    assert list(c.text("kind")) == ["order_placed", "ticker", "order_filled", "balance_updated"]


def test_a_text_value_is_stored_once_in_its_dictionary() -> None:
    c = Columns.from_events(events())
    symbols = c.dicts[TEXT.index("symbol")]
    assert sorted(symbols) == ["BTC/USDT", "ETH/USDT"]
    codes = c.codes[TEXT.index("symbol")].tolist()
    assert [symbols[k] if k >= 0 else None for k in codes] == ["BTC/USDT", "ETH/USDT", "BTC/USDT", None]


def test_absent_fields_are_minus_one_codes_and_nan_numbers() -> None:
    c = Columns.from_events(events())
    assert c.codes[TEXT.index("side")].tolist() == [-1, -1, -1, -1]
    amounts = c.number("amount")
    assert amounts[0] == 0.5 and all(math.isnan(x) for x in amounts[1:])
    assert pd.isna(c.text("client_order_id")).tolist() == [False, True, False, True]


def test_numeric_strings_are_parsed_and_the_rest_goes_to_the_payload() -> None:
    c = Columns.from_events(events())
    assert c.number("price").tolist()[:2] == [100.0, 2.5]
    assert c.payloads() == [{}, {"timeframe": "1m"}, {"note": "x"}, {"payload": {"USDT": {"free": 1.0, "used": 0.0, "total": 1.0}}}]


def test_unreadable_numbers_become_nan_and_text_is_written_out() -> None:
    c = Columns.from_events([{"timestamp": T, "kind": "api_call", "latency_ms": "slow", "order_id": 12345}])
    assert math.isnan(c.number("latency_ms")[0])
    assert c.dicts[TEXT.index("order_id")] == ["12345"]


def test_payloads_of_some_kinds_leave_the_others_unread() -> None:
    c = Columns.from_events(events())
    assert c.payloads({"ticker"}) == [None, {"timeframe": "1m"}, None, None]


def test_one_payload_field_is_read_where_present() -> None:
    c = Columns.from_events(events())
    assert c.field("note").tolist() == [None, None, "x", None]
    assert c.field("absent").tolist() == [None] * 4


def test_values_that_hash_alike_but_differ_in_type_keep_their_type() -> None:
    rows = [{"timestamp": T + i, "kind": "other", "v": v} for i, v in enumerate([True, 1, 1.0, "1"])]
    assert [p["v"] for p in Columns.from_events(rows).payloads()] == [True, 1, 1.0, "1"]  # type: ignore[index]


def test_an_empty_batch_has_every_column_and_no_rows() -> None:
    c = Columns.from_events([])
    assert len(c) == 0 and c.codes.shape == (len(TEXT), 0) and c.numbers.shape == (len(NUMBERS), 0)
    assert c.payloads() == [] and len(c.frame()) == 0


def test_a_batch_read_without_payloads_says_so() -> None:
    c = Columns.from_events(events())
    bare = Columns(c.timestamp, c.codes, c.dicts, c.numbers, np.zeros(len(c), np.int64), np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match="payload=False"):
        bare.payloads()


def test_take_and_slice_select_rows_with_their_payloads() -> None:
    c = Columns.from_events(events())
    picked = c.take(np.array([3, 1]))
    assert picked.timestamp.tolist() == [T + 4, T + 2]
    assert picked.payloads() == [c.payloads()[3], {"timeframe": "1m"}]
    part = c.slice(1, 3)
    assert part.payloads() == [{"timeframe": "1m"}, {"note": "x"}]
    assert c.take(c.rows_of("kind", ["order_placed", "order_filled"])).timestamp.tolist() == [T + 1, T + 3]


def test_concat_merges_dictionaries_and_remaps_codes() -> None:
    a = Columns.from_events([{"timestamp": T, "kind": "order_placed", "symbol": "BTC/USDT"}])
    b = Columns.from_events([{"timestamp": T + 1, "kind": "ticker", "symbol": "ETH/USDT", "x": 1}])
    both = Columns.concat([a, Columns.empty(), b])
    assert list(both.text("kind")) == ["order_placed", "ticker"]
    assert list(both.text("symbol")) == ["BTC/USDT", "ETH/USDT"]
    assert both.payloads() == [{}, {"x": 1}]


def test_pruned_keeps_only_the_values_its_rows_use() -> None:
    c = Columns.from_events(events())
    eth_only = c.take(np.array([1])).pruned()
    assert eth_only.dicts[TEXT.index("symbol")] == ["ETH/USDT"] and list(eth_only.text("symbol")) == ["ETH/USDT"]
    assert eth_only.dicts[TEXT.index("client_order_id")] == []


def test_the_frame_is_typed_categorical_text_float_numbers_and_utc_time() -> None:
    df = Columns.from_events(events()).frame()
    assert str(df["timestamp"].dt.tz) == "UTC" and df["timestamp"].iloc[0].value == T + 1
    assert df["symbol"].dtype == "category" and df["price"].dtype == np.float64
    assert list(df.columns) == ["timestamp", *TEXT, *NUMBERS, "payload"]
