"""`python -m lipdp.cli`: the `lipdp` command, run from a checkout."""

import sys

from lipdp import cli

sys.exit(cli.main())
