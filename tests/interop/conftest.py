"""pytest: the test networks of ``nets.py`` are importable as ``nets``; it holds no tests itself."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

collect_ignore = ["nets.py"]
