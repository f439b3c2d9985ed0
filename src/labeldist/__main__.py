import sys

from labeldist.cli import main

sys.exit(main())
