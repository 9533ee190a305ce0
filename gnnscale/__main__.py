import sys

from .programs.main import main

sys.exit(main())
