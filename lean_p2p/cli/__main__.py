import sys

from lean_p2p.cli import entry_point

sys.exit(entry_point())
