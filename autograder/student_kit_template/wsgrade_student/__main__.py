"""``python -m wsgrade_student check PATH`` is ``wsgrade check PATH``."""

import sys

from .cli import main

sys.exit(main())
