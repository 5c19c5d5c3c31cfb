"""``python -m scorer.server --repository DIR``: the same as ``tablescore serve``."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
