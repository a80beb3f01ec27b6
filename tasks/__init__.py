"""Prefect tasks: each takes serialisable inputs (strategy name, config path, plain values), builds what it needs,
and returns plain data, so Prefect can retry it and show its inputs. The domain logic stays in planar_core; the
flows in ``flows/`` only orchestrate these. The live engine's hot path creates no task runs."""

Overrides = dict[str, object] | None
"""Config overrides a flow passes on to its tasks (plain values, as in the flow's parameters)."""
