"""``python -m mcviz``: the same as the ``mcviz`` command."""

from mcviz.cli import main

raise SystemExit(main())
