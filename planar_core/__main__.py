"""``python -m planar_core`` == ``planar``."""

from .cli import app

app(prog_name="planar")
