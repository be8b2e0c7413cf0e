"""``python -m benches``: the one-command comparison of SLAF with the tools it replaces."""

import sys
from pathlib import Path

# The bench scripts import each other as top-level modules (``from synthetic import ...``);
# the suite does the same so that each module is loaded once, under one name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite.cli import main

main()
