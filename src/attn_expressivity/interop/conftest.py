"""pytest: collect the torch modules' doctests only where torch is installed."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["torch.py", "torch_modules.py"]
