"""``python -m nodekit``: the same command line as ``nodekit``."""
import sys

from .cli import main

sys.exit(main())
