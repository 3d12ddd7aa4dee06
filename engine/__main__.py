"""`python -m engine <command> ...`: the same engine as the `studio` command."""

import sys

from engine.cli import main

sys.exit(main())
