"""`python -m tickwire.devstack`: same as the tickwire-stack command."""

import sys

from tickwire.devstack.cli import main

sys.exit(main())
