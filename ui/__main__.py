"""``python -m ui``: the tray app."""

from ui.app import main

raise SystemExit(main())
