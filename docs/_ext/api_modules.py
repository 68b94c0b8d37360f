"""Which modules the API reference documents, and in what order (no Sphinx needed).

Every module of the package whose name has no leading underscore and that
defines a non-empty ``__all__`` gets a section. A module documents its members
when it defines some of them itself; a package ``__init__`` or a facade such as
:mod:`attn_expressivity.symbolic`, whose names are all defined elsewhere, shows
its docstring only, so each object is described once, in its defining module.
Sections follow the layers of the package (docs/architecture.md), bottom up.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

#: Preferred order and titles of the sections; other public modules follow by name.
API_ORDER = {
    "errors": "Errors",
    "convolution": "The reference side",
    "convolution.config": "Convolution configuration",
    "convolution.shifts": "Shift sets",
    "convolution.slices": "Kernel slices",
    "convolution.reference": "Reference convolution",
    "convolution.accurate": "Compensated reference convolution",
    "convolution.instances": "Random instances",
    "attention": "The attention side",
    "attention.encoding": "Encodings",
    "attention.softmax": "Softmax",
    "attention.weights": "The weights of a layer",
    "attention.layer": "The MHSA layer",
    "attention.axes": "Per-axis score tables",
    "attention.bands": "Banded contractions",
    "attention.dense": "Dense path",
    "attention.positional": "Dense positional path",
    "attention.separable": "Separable path",
    "attention.traced": "The paths with a running error bound",
    "balls": "Ball arithmetic",
    "balls.backends": "Ball-arithmetic back-ends",
    "balls.theta": "Enclosures of the leak",
    "theorem": "Theorem 1",
    "theorem.factorisation": "Lemma 1: value and output blocks",
    "theorem.construction": "Construction (Theorem 1)",
    "theorem.heads": "Head vectors as stored",
    "theorem.border": "The padding remark",
    "theorem.lower_bound": "Theorem 1 is tight: the number of heads",
    "bounds": "Bounds",
    "bounds.leak": "Leak bound",
    "bounds.rounding": "Rounding",
    "bounds.scale": "Data factor",
    "bounds.tables": "Computed weights against one-hot rows and the theory",
    "bounds.elementwise": "The element-by-element bound",
    "bounds.error": "The per-channel bound",
    "bounds.dtypes": "Alpha per float type",
    "certify": "Certified checks",
    "certify.instance": "Certified instance check",
    "certify.report": "Certification report",
    "verify": "Verification",
    "symbolic": "Symbolic engine",
    "proof": "Symbolic engine: its modules",
    "proof.derive": "Derivations",
    "proof.obligation": "Proof obligations",
    "proof.numeric": "The package's numbers at generic points",
    "proof.prove": "Discharging the obligations",
    "proof.documents": "The derivation document",
    "proof.coq": "The Coq development's audit",
    "testing": "Testing helpers",
    "testing.strategies": "Hypothesis strategies",
    "testing.profiles": "Hypothesis profiles",
    "testing.assertions": "The reproduction assertion",
    "plot": "Figures",
    "interop.torch": "PyTorch interop",
    "interop.torch_separable": "The separable, banded torch route",
    "interop.convert": "Converting whole networks",
    "interop.layer_bounds": "Layer bounds in torch",
    "interop.network_rules": "Propagation rules",
    "interop.network_passes": "The passes of whole-network verification",
    "interop.verify_model": "Whole-network verification",
    "analysis": "Reading attention layers",
    "analysis.forms": "Positional scores as quadratic forms",
    "analysis.readers": "Every supported layer in one form",
    "analysis.statistics": "Per-head statistics",
    "analysis.nearest": "The nearest convolution",
    "analysis.report": "The analysis report",
    "analysis.analyse": "analyse_attention",
    "learn": "The empirical claim, on a CPU",
    "learn.models": "Trainable layers",
    "learn.teacher": "Teacher convolution",
    "learn.data": "Texture patches",
    "learn.classify": "Texture classification",
    "learn.criteria": "Criteria",
    "learn.runner": "Five seeds, cached",
    "learn.figures": "Figures of the experiments",
    "learn.report": "Results tables",
    "learn.progress": "Progress bar",
    "cli": "Console script",
}

#: Modules that import torch when imported: documented only where torch is installed.
NEEDS_TORCH = ("learn.models", "learn.teacher", "learn.classify", "interop.torch_separable",
               "interop.layer_bounds", "interop.network_rules", "interop.network_passes")


def public_modules() -> list[str]:
    """Names (relative to the package) of the modules the API reference documents."""
    import attn_expressivity

    found = []
    for info in pkgutil.walk_packages(attn_expressivity.__path__, "attn_expressivity."):
        rel = info.name.removeprefix("attn_expressivity.")
        if any(part.startswith("_") for part in rel.split(".")):
            continue
        if rel.endswith("torch_modules") or rel.endswith("conftest"):
            continue                # needs torch at import time / pytest configuration
        if rel in NEEDS_TORCH and importlib.util.find_spec("torch") is None:
            continue
        if getattr(importlib.import_module(info.name), "__all__", None):
            found.append(rel)
    order = list(API_ORDER)
    return sorted(found, key=lambda m: (order.index(m) if m in order else len(order), m))


def documents_members(rel: str) -> bool:
    """Whether the section of ``rel`` lists members: it defines at least one of them itself."""
    module = importlib.import_module(f"attn_expressivity.{rel}")
    if hasattr(module, "__path__"):
        return False
    return any(getattr(getattr(module, name), "__module__", None) == module.__name__
               for name in module.__all__)
