"""``python -m planar_core``: the engine's command line (sandbox, trace); ``planar`` adds the Prefect commands."""

from .cli import main

main()
