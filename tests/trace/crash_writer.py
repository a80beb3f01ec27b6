"""A trace writer that runs until killed; prints the last event known durable after each intent."""

import sys

from planar_core.trace import EventTrace

root = sys.argv[1]
checkpoint_every = int(sys.argv[2]) if len(sys.argv) > 2 else 30
lease_ttl = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0  # object storage: how soon a restart may take over
et = EventTrace(root, flush_interval=3600, checkpoint_every=checkpoint_every, max_wal_files=7, lease_ttl=lease_ttl)
i = 0
while True:
    kind = "order_placed" if i % 3 == 0 else "api_call"
    et.record(kind, seq=i, symbol="BTC/USDT", client_order_id=f"c{i}", amount=0.001 * (i % 7 + 1), price=100.0 + i, endpoint="x")
    if kind == "order_placed":  # recorded intents are flushed before record() returns
        print(f"durable {i}", flush=True)
    i += 1
