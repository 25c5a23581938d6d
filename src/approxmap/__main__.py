import sys

from approxmap.cli import main

sys.exit(main())
