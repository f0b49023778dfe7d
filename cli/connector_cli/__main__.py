"""``python -m connector_cli``: the same as the ``connector`` command."""

import sys

from .main import main

sys.exit(main())
