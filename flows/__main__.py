"""``python -m flows`` == ``planar``."""

from .cli import main

main()
