"""``python -m streamdet`` runs the command line."""

import sys

from streamdet.cli import main

sys.exit(main())
