import sys

from timesformer.cli import main

sys.exit(main())
