"""`python -m syncer` runs the CLI."""

import sys

from syncer import cli

sys.exit(cli.main())
