"""``python -m nodekit.validation``: run the validation suite (see ``--help``)."""
import sys

from . import main

sys.exit(main())
