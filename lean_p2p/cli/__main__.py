import sys

from lean_p2p.cli import main

sys.exit(main())
