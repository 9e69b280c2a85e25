"""``python -m benchmarks``: see the package's docstring."""

import sys

from benchmarks.runner import main

sys.exit(main())
