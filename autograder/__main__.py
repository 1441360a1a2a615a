"""``python -m autograder`` is the same as the ``wsgrade`` command."""

from autograder.cli import main

raise SystemExit(main())
