"""`python -m tentorium_hub` runs the command line, like the `tentorium-hub` script."""

import sys

from tentorium_hub.cli import main

sys.exit(main())
