"""``python -m lshgan.mlops.tuning ...``: the same as ``lshgan tune ...``."""

import sys

from .cli import main

sys.exit(main())
