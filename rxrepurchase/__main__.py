import sys

from rxrepurchase.cli import main

sys.exit(main())
