import sys

from litlab.cli import main

sys.exit(main())
