"""``python -m tablescore``: the same as the ``tablescore`` command."""

import sys

from .cli import main

sys.exit(main())
