"""``python -m minirnn``: the same as the ``minirnn`` command.

May use: :mod:`minirnn.cli`.
"""

import sys

from .cli import main

sys.exit(main())
