"""``python -m lawfit``: the ``lawfit`` command."""
import sys

from lawfit.cli.main import main

sys.exit(main())
