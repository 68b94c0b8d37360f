"""pytest: collect the torch modules' doctests only where torch is installed."""

import importlib.util

_NEED_TORCH = ["torch.py", "torch_modules.py", "torch_separable.py", "convert.py", "layer_bounds.py",
               "network_rules.py", "network_passes.py", "verify_model.py"]

collect_ignore = [] if importlib.util.find_spec("torch") else _NEED_TORCH
