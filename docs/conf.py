"""Sphinx configuration for the attn-expressivity documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W -b html docs docs/_build/html

Everything is local: MathJax is vendored under ``_static/mathjax`` (no CDN), no
intersphinx. The directives of ``_ext/engine.py`` run the symbolic engine while
the pages are built, so the derivations shown are computed, not typed.
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import attn_expressivity  # noqa: E402

project = "attn-expressivity"
author = "the attn-expressivity authors"
copyright = "2026, the attn-expressivity authors"
release = version = attn_expressivity.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_proof",
    "engine",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_static", "_ext", "Thumbs.db", ".DS_Store"]

# MyST: $…$ / $$…$$ maths, ::: fences for the theorem blocks, anchors for headings.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# MathJax 3 from the repository (offline); SVG output needs no font files.
mathjax_path = "mathjax/tex-svg.js"

# API reference from the numpydoc docstrings.
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# sphinx-proof: number theorems/lemmas per page, prefix-free titles.
proof_uniform_numbering = False

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"attn-expressivity {release}"
html_theme_options = {
    "description": "Self-attention expresses convolution: built, checked, proved.",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "230px",
}
html_css_files = ["custom.css"]


def _resolve_public_alias(app, env, node, contnode):
    """Resolve ``attn_expressivity.NAME`` to where NAME is defined and documented.

    The public names are documented once, in their defining module
    (``attn_expressivity.theorem.construction.conv_to_mhsa``); references may use the
    short public path (``attn_expressivity.conv_to_mhsa``).
    """
    import importlib

    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("attn_expressivity."):
        return None
    parts = target.split(".")
    obj = None
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        break
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or f"{module}.{qualname}" == target:
        return None
    domain = env.get_domain("py")
    new = node.deepcopy()
    new["reftarget"] = f"{module}.{qualname}"
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                               new["reftarget"], new, contnode)


def setup(app):
    app.connect("missing-reference", _resolve_public_alias)
