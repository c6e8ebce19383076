"""``python -m server`` runs the ``cairn-server`` command line."""

import sys

from server.cli import main

sys.exit(main())
