"""``python -m society_env`` is the ``society-env`` command."""

import sys

from society_env.app.cli import main

sys.exit(main())
