"""``python -m lipsync``: see ``lipsync.cli``."""

import sys

from .cli import main

sys.exit(main())
