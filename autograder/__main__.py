"""``python -m autograder`` is the same as the ``wsgrade`` command.

``python -m`` puts the current folder first on ``sys.path``: run from a student's folder, a planted
``numpy.py`` or ``rich.py`` there would be imported by the grader. So it starts again in safe-path
mode (``-P``) before anything else is imported. (A planted ``autograder.py`` is imported *instead*
of this package and cannot be stopped from here: grade from outside the submissions, or use the
``wsgrade`` command, which never looks in the current folder.)
"""

import os
import sys

if not sys.flags.safe_path:
    os.execv(sys.executable, [sys.executable, "-P", "-m", "autograder", *sys.argv[1:]])

from autograder.cli import main

raise SystemExit(main())
