"""pytest: collect the learn modules' doctests only where their extra is installed."""

import importlib.util

_TORCH = ["models.py", "teacher.py", "classify.py", "runner.py"]
collect_ignore = [] if importlib.util.find_spec("torch") else _TORCH
if importlib.util.find_spec("matplotlib") is None:
    collect_ignore.append("figures.py")
