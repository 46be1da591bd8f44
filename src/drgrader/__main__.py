import sys

from drgrader.cli import main

sys.exit(main())
