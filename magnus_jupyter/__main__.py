"""``python -m magnus_jupyter`` is the ``magnus-jupyter`` command."""

from .cli import main

raise SystemExit(main())
