"""Sphinx directives that put the symbolic engine's output into the pages at build time.

The mathematics these directives show is computed while the documentation is
built, never typed into the pages:

``derivation`` (argument ``isotropic``, ``anisotropic`` or ``linear``, option ``:ndim:``)
    Runs :func:`attn_expressivity.symbolic.derive_isotropic` (or the anisotropic /
    linear variant) and shows the target score, the encoding, one coefficient
    equation per monomial, and the solution ``v``, constant ``c`` and residual —
    each the ``sympy.latex`` of the engine's object.

``obligation`` (argument: an obligation name such as ``lemma1.D1.K3``)
    Looks the obligation up in :func:`attn_expressivity.symbolic.paper_obligations`,
    discharges it, and shows its sentence, its statement (``sympy.latex``), the
    method and what the check found. An obligation that is not proved makes the
    build emit a warning, so ``sphinx-build -W`` fails.

``alpha-table`` (option ``:tolerances:``, space-separated)
    A table of :func:`attn_expressivity.alpha_for_tolerance` for D = 1, 2, 3.

``api-modules``
    One section per public module of the package (every module whose name has
    no leading underscore and that defines ``__all__``), each an ``automodule``
    with its members: the reference follows the package as it is, and a module
    added later is documented without editing the page.
"""

from __future__ import annotations

import functools

from api_modules import API_ORDER, documents_members, public_modules
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


@functools.cache
def _obligations() -> dict:
    from attn_expressivity import symbolic

    return {o.name: o for o in symbolic.paper_obligations()}


@functools.cache
def _discharged(name: str):
    return _obligations()[name].discharge()


def _math(latex: str) -> nodes.math_block:
    return nodes.math_block(latex, latex, nowrap=False, number=None)


def _para(*children: nodes.Node) -> nodes.paragraph:
    p = nodes.paragraph()
    p.extend(children)
    return p


class DerivationDirective(SphinxDirective):
    """Show one head-vector derivation of the engine (see the module docstring)."""

    required_arguments = 1
    option_spec = {"ndim": directives.positive_int}

    def run(self) -> list[nodes.Node]:
        import sympy as sp

        from attn_expressivity import symbolic

        makers = {"isotropic": symbolic.derive_isotropic, "anisotropic": symbolic.derive_anisotropic,
                  "linear": symbolic.derive_linear}
        kind = self.arguments[0]
        if kind not in makers:
            raise self.error(f"derivation must be one of {sorted(makers)}, got {kind!r}")
        d = makers[kind](self.options.get("ndim", 2))
        basis = sp.latex(sp.ImmutableMatrix([list(d.basis)]))
        out: list[nodes.Node] = [
            _para(nodes.Text("Target score and encoding (computed by "),
                  nodes.literal(text=f"symbolic.derive_{kind}({d.ndim})"), nodes.Text("):")),
            _math(f"s(\\delta) = {sp.latex(d.score)}"),
            _math(f"r_\\delta = {basis}^\\top \\quad (D_p = {d.encoding_dim})"),
            _para(nodes.Text("Coefficient of each monomial of δ in vᵀr_δ = s(δ) + c:")),
            _math("\\begin{aligned}" + " \\\\ ".join(
                f"{sp.latex(m)}:&\\quad {sp.latex(eq.lhs)} = {sp.latex(eq.rhs)}"
                for m, eq in d.equations) + "\\end{aligned}"),
        ]
        if d.v is None:
            out.append(_para(nodes.strong(text="Result: "), nodes.Text(d.message + ".")))
        else:
            out += [
                _para(nodes.Text("Solution, constant and residual (expanded):")),
                _math(f"v = {sp.latex(d.v.T)}^\\top"),
                _math(f"c = {sp.latex(sp.factor(d.constant))}, \\qquad "
                      f"v^\\top r_\\delta - s(\\delta) - c = {sp.latex(d.residual)}"),
            ]
        return out


class ObligationDirective(SphinxDirective):
    """Show one proof obligation, discharged at build time (see the module docstring)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        import sympy as sp

        name = self.arguments[0]
        if name not in _obligations():
            raise self.error(f"no proof obligation named {name!r} in symbolic.paper_obligations()")
        o = _discharged(name)
        if not o.holds:
            logger.warning("proof obligation %s is %s: %s", name, o.status, o.detail,
                           location=(self.env.docname, self.lineno))
        box = nodes.container(classes=["obligation"])
        box += _para(nodes.strong(text=f"{o.name}"),
                     nodes.Text(f" ({o.claim}; {o.method}; "), nodes.strong(text=o.status),
                     nodes.Text(f", {o.scope}). " + o.text))
        box += _math(sp.latex(o.statement))
        box += _para(nodes.Text("Check: "), nodes.literal(text=o.detail))
        coq = [nodes.Text("For every D, in Coq: ")]
        for i, theorem in enumerate(o.coq):
            coq += [nodes.Text(", " if i else ""), nodes.literal(text=theorem)]
        box += _para(*(coq + [nodes.Text(" (see the Coq page).")] if o.coq
                       else [nodes.Text("Not mechanised in Coq.")]))
        return [box]


class AlphaTableDirective(SphinxDirective):
    """A table of ``alpha_for_tolerance(tol, D)`` (see the module docstring)."""

    option_spec = {"tolerances": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from attn_expressivity import alpha_for_tolerance, leak_bound

        tols = [float(t) for t in self.options.get("tolerances", "1e-3 1e-6 1e-9 1e-12").split()]
        table = nodes.table()
        group = nodes.tgroup(cols=4)
        table += group
        for _ in range(4):
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        body = nodes.tbody()
        group += head
        group += body

        def row(cells: list[str], parent: nodes.Element) -> None:
            r = nodes.row()
            for c in cells:
                entry = nodes.entry()
                entry += nodes.paragraph(text=c)
                r += entry
            parent += r

        row(["tolerance on 2 · leak", "α (D = 1)", "α (D = 2)", "α (D = 3)"], head)
        for tol in tols:
            alphas = [alpha_for_tolerance(tol, d) for d in (1, 2, 3)]
            if not all(2 * leak_bound(a, d) <= tol for a, d in zip(alphas, (1, 2, 3))):
                logger.warning("alpha_for_tolerance(%g) misses its tolerance", tol,
                               location=(self.env.docname, self.lineno))
            row([f"{tol:g}"] + [f"{a:.3f}" for a in alphas], body)
        return [table]


class ApiModulesDirective(SphinxDirective):
    """One section with an ``automodule`` per public module (see the module docstring)."""

    def run(self) -> list[nodes.Node]:
        from docutils.statemachine import StringList
        from sphinx.util.nodes import nested_parse_with_titles

        out: list[nodes.Node] = []
        for rel in public_modules():
            full = f"attn_expressivity.{rel}"
            section = nodes.section(ids=[f"api-{rel.replace('.', '-')}"])
            section += nodes.title(text=f"{API_ORDER.get(rel, rel)} ({full})")
            options = ([":members:"] if documents_members(rel) else [":no-members:"]) + (
                [":show-inheritance:"] if rel == "errors" else [])
            options = ["   " + o for o in options]
            # the page is MyST: the reST of autodoc goes through an eval-rst block
            body = StringList(["```{eval-rst}", f".. automodule:: {full}", *options, "```", ""],
                              source=self.env.docname)
            nested_parse_with_titles(self.state, body, section)
            out.append(section)
        return out


def setup(app):
    app.add_directive("api-modules", ApiModulesDirective)
    app.add_directive("derivation", DerivationDirective)
    app.add_directive("obligation", ObligationDirective)
    app.add_directive("alpha-table", AlphaTableDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
