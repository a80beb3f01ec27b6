"""``python -m planar_core`` == ``planar``."""

from .cli import main

main()
