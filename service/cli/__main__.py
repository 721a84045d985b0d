"""`python -m service.cli`: the same as the `replyd` console script."""

import sys

from service.cli import main

sys.exit(main())
