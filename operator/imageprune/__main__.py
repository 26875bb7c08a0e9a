"""`python -m imageprune` is the `imageprune` console script."""

import sys

from imageprune import entry

sys.exit(entry.main())
