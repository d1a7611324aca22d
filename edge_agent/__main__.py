"""`python -m edge_agent` is `sbms-agent`."""

import sys

from edge_agent.cli import main

sys.exit(main())
