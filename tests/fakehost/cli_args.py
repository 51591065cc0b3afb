"""A fake of ``comfy.cli_args``."""

from types import SimpleNamespace

args = SimpleNamespace(disable_metadata=False)
