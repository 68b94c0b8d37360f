"""The documentation refers only to things that exist, and its examples run.

The paper map (docs/paper_map.md) is parsed row by row: every Python object it
names must import, every proof script and test file must exist, every test
function must be defined, every obligation pattern must match an obligation
of the symbolic engine, and every Coq theorem must be one that proofs/coq/check
audits (a row that names none says "not mechanised"). The build itself
(``sphinx-build -W``) runs in CI.
"""

import ast
import fnmatch
import importlib
import pathlib
import re

import pytest

import attn_expressivity

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_ROLE = re.compile(r"\{(?:func|class|meth|mod|data|attr|exc)\}`(?:[^`<]*<)?~?([\w.]+)>?`")
_SCRIPT = re.compile(r"\{download\}`[^`<]*<\.\./(proofs/[\w.]+\.py)>`")
_TEST = re.compile(r"\{download\}`((?:\w+/)?test_\w+\.py)::(\w+) <\.\./tests/((?:\w+/)?test_\w+\.py)>`")
_OBLIGATION = re.compile(r"(?<![\w{}])`([a-z0-9_]+\.[A-Za-z0-9_.*]+)`")
_COQ = re.compile(r"`([A-Z]\w*)\.(\w+)`")          # `Module.name` or a file `Module.v`
COQ_DIR = ROOT / "proofs" / "coq"


def _coq_theorems() -> set[str]:
    """The theorems proofs/coq/check audits (its THEOREMS table, read without running it)."""
    text = (COQ_DIR / "check").read_text(encoding="utf-8")
    return set(re.findall(r'^\s*\("([A-Z]\w*\.\w+)", "', text, flags=re.M))


def _coq_cell_problems(cell: str, theorems: set[str]) -> list[str]:
    """What is wrong with a Coq cell: unknown theorems, definitions or files; no name and no reason."""
    problems, names = [], _COQ.findall(cell)
    for module, name in names:
        if name == "v":
            if not (COQ_DIR / f"{module}.v").is_file():
                problems.append(f"no file proofs/coq/{module}.v")
        elif cell.startswith("definition"):
            source = COQ_DIR / f"{module}.v"
            if not source.is_file() or not re.search(rf"^Definition {name}\b", source.read_text(
                    encoding="utf-8"), flags=re.M):
                problems.append(f"no definition {name} in proofs/coq/{module}.v")
        elif f"{module}.{name}" not in theorems:
            problems.append(f"{module}.{name} is not audited by proofs/coq/check")
    if not [n for n in names if n[1] != "v"] and "not mechanised" not in cell:
        problems.append("names no Coq theorem and does not say 'not mechanised'")
    return problems


def _resolve(dotted: str) -> object:
    """Import ``a.b.c`` as a module or as an attribute chain below the longest module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "torch":      # a module that needs the extra
                pytest.skip("needs the torch extra: pip install torch==2.13.0")
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ModuleNotFoundError(dotted)


def _map_rows() -> list[list[str]]:
    rows = []
    for line in (DOCS / "paper_map.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| ") or line.startswith("| statement") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows.append(cells)
    return rows


def _functions(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
    return names


@pytest.fixture(scope="module")
def obligation_names():
    from attn_expressivity import symbolic

    return [o.name for o in symbolic.paper_obligations()]


ROWS = _map_rows()


def test_map_has_the_paper_statements():
    statements = " ".join(r[0] for r in ROWS)
    assert len(ROWS) >= 20
    for needle in ("Theorem 1", "Lemma 1", "Lemma 2", "Generalised quadratic encoding",
                   "Leak bound", "head dimension", "Figure 3"):
        assert needle in statements, needle
    assert all(len(r) == 6 for r in ROWS), [r[0] for r in ROWS if len(r) != 6]


@pytest.mark.parametrize("row", ROWS, ids=[r[0][:40] for r in ROWS])
def test_map_row_names_code_proof_and_tests_that_exist(row, obligation_names):
    _, _, code, proof, tests, coq = row
    assert not _coq_cell_problems(coq, _coq_theorems()), (row[0], _coq_cell_problems(coq, _coq_theorems()))
    names = _ROLE.findall(code)
    assert names, f"no code named in {row[0]!r}"
    for name in names:
        assert name.startswith("attn_expressivity."), name
        _resolve(name)                                    # raises if the name disappeared
    scripts = _SCRIPT.findall(proof)
    for script in scripts:
        assert (ROOT / script).is_file(), script
    assert scripts or "numerically only" in proof or "nothing to prove" in proof, (
        f"row {row[0]!r} names no proof script and does not say why")
    for pattern in _OBLIGATION.findall(proof):
        assert fnmatch.filter(obligation_names, pattern), f"no obligation matches {pattern!r}"
    refs = _TEST.findall(tests)
    assert refs, f"no test named in {row[0]!r}"
    for shown, func, target in refs:
        assert shown == target, (shown, target)
        path = ROOT / "tests" / target
        assert path.is_file(), target
        assert func in _functions(path), f"{target}::{func} does not exist"


def test_map_covers_every_proof_script_and_obligation(obligation_names):
    text = (DOCS / "paper_map.md").read_text(encoding="utf-8")
    scripts = {p.name for p in (ROOT / "proofs").glob("*.py") if not p.name.startswith("_")}
    assert scripts and scripts <= {pathlib.Path(s).name for s in _SCRIPT.findall(text)}
    patterns = _OBLIGATION.findall(text)
    uncovered = [n for n in obligation_names if not any(fnmatch.fnmatch(n, p) for p in patterns)]
    assert not uncovered, uncovered


def test_coq_column_is_strict():
    theorems = _coq_theorems()
    assert {"Lemma1.lemma1", "Lemma2.lemma2", "Theorem1.theorem1"} <= theorems
    assert _coq_cell_problems("`Lemma1.lemma1`, pinned in `Statements.v`", theorems) == []
    assert _coq_cell_problems("`Lemma1.lemma3`", theorems) == ["Lemma1.lemma3 is not audited by proofs/coq/check"]
    assert _coq_cell_problems("definitions `Layers.conv`", theorems) == []
    assert _coq_cell_problems("definitions `Layers.convolution`", theorems)
    assert _coq_cell_problems("`Nowhere.v`", theorems)
    assert _coq_cell_problems("proved elsewhere", theorems)
    assert _coq_cell_problems("not mechanised (a figure)", theorems) == []
    rows = {r[0][:12]: r[5] for r in ROWS}
    assert "Theorem1.theorem1" in rows["**Theorem 1*"] and "Lemma1.lemma1" in rows["**Lemma 1**:"]


def test_coq_page_lists_every_audited_theorem():
    page = (DOCS / "coq.md").read_text(encoding="utf-8")
    table = [ln.split(" | ") for ln in page.splitlines() if ln.startswith("| ") and "`" in ln]
    listed = [name for cells in table for name in re.findall(r"`([A-Z]\w*\.\w+)`", cells[1])]
    assert listed and set(listed) <= _coq_theorems() and len(listed) == len(set(listed))
    core = {"Lemma1.lemma1", "Lemma1.lemma1_weights", "Lemma2.lemma2", "Lemma2.lemma2_softmax",
            "Concentration.concentration", "Theorem1.theorem1_bound", "Theorem1.theorem1_limit",
            "Theorem1.theorem1", "CoqReals.theorem1_R"}
    assert core <= set(listed)
    assert all(cells[2] == f"`{cells[1].strip('`').split('.')[0]}.v`" for cells in table)


def test_readme_names_audited_coq_theorems():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Machine-checked proofs (Coq)", 1)[1].split("\n## ", 1)[0]
    names = [f"{m}.{n}" for m, n in _COQ.findall(section) if n != "v"]
    assert names and set(names) <= _coq_theorems(), sorted(set(names) - _coq_theorems())
    assert "proofs/coq/check" in section and "attn-expressivity prove --coq" in section


def test_role_pattern_sees_a_missing_name():
    # the checks above are only as good as the parser: a planted bad name must fail
    row = ["x", "y", "{func}`~attn_expressivity.no_such_function`", "", "", ""]
    with pytest.raises(AttributeError):
        for name in _ROLE.findall(row[2]):
            _resolve(name)
    assert _TEST.findall("{download}`test_a.py::test_b <../tests/test_a.py>`") == [
        ("test_a.py", "test_b", "test_a.py")]


def test_every_public_name_and_module_is_documented():
    import sys

    api = (DOCS / "api.md").read_text(encoding="utf-8")
    text = api + (DOCS / "paper_map.md").read_text(encoding="utf-8")
    missing = [n for n in attn_expressivity.__all__ if n not in text]
    assert not missing, missing
    # the API page documents the modules the build finds; check it finds them all
    assert "```{api-modules}" in api
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        api_modules = importlib.import_module("api_modules")      # no Sphinx needed
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    found = api_modules.public_modules()
    for must in ("theorem.construction", "verify", "bounds.leak", "symbolic", "plot", "cli",
                 "interop.torch", "testing.assertions", "convolution.reference"):
        assert must in found, must
    assert not [m for m in found if any(p.startswith("_") for p in m.split("."))]
    # every public name is documented (with members) in the module that defines it
    for name in attn_expressivity.__all__:
        obj = getattr(attn_expressivity, name)
        home = obj.__module__.removeprefix("attn_expressivity.")
        assert home in found and api_modules.documents_members(home), (name, home)


def test_guide_obligations_exist(obligation_names):
    guide = (DOCS / "guide.md").read_text(encoding="utf-8")
    shown = re.findall(r"```\{obligation\} (\S+)", guide)
    assert len(shown) >= 5
    assert set(shown) <= set(obligation_names), set(shown) - set(obligation_names)
    kinds = re.findall(r"```\{derivation\} (\S+)", guide)
    assert {"isotropic", "anisotropic", "linear"} <= set(kinds)


def test_index_includes_every_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    toctree = re.search(r"```\{toctree\}(.*?)```", index, flags=re.S).group(1)
    assert ":glob:" in toctree and re.search(r"^\*$", toctree, flags=re.M)
    for page in ("quickstart", "conventions", "guide", "derivations", "paper_map", "api"):
        assert re.search(rf"^{page}$", toctree, flags=re.M), page
        assert (DOCS / f"{page}.md").is_file(), page


def test_figures_and_mathjax_are_in_the_repository():
    from attn_expressivity.plot import FIGURES

    pages = "".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    shown = set(re.findall(r"_static/figures/(\w+)\.png", pages))
    assert shown == set(FIGURES)
    for name in FIGURES:
        png = DOCS / "_static" / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 300_000
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    path = re.search(r'^mathjax_path = "([^"]+)"', conf, flags=re.M).group(1)
    js = DOCS / "_static" / path
    assert js.is_file() and js.stat().st_size < 3_000_000
    assert (js.parent / "LICENSE").is_file()
    assert "sphinx.ext.intersphinx" not in conf           # the build must work offline


@pytest.mark.parametrize("page", ["quickstart", "conventions", "guide"])
def test_page_examples_run(page, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / f"{page}.md").read_text(encoding="utf-8"),
                        flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, f"docs/{page}.md", "exec"), {})


def test_quickstart_repeats_the_readme_commands_and_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    for command in ("python -m pip install . && attn-expressivity verify",
                    'python -m pip install -e ".[test]" && python -m pytest'):
        assert command in readme and command in quick
    example = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0]
    assert example in quick


def test_citation_file():
    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    for needle in ("cff-version: 1.2.0", "title: attn-expressivity", "references:",
                   "On the Relationship between Self-Attention and Convolutional Layers",
                   "Cordonnier", "Loukas", "Jaggi"):
        assert needle in cff, needle
    assert f"version: {attn_expressivity.__version__}" in cff


def test_dtype_table_analytic_column_is_current():
    """The α-from-the-bound column of docs/dtypes.md is what alpha_for_tolerance gives now
    (the measured column depends on the BLAS build and is regenerated by hand)."""
    import numpy as np

    from attn_expressivity import alpha_for_tolerance

    text = (DOCS / "dtypes.md").read_text(encoding="utf-8")
    u = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}
    seen = 0
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] in u:
            assert cells[2] == f"{alpha_for_tolerance(u[cells[0]], 2):.4f}", line
            assert float(cells[1]) == float(f"{u[cells[0]]:.3e}") and np.isfinite(float(cells[3]))
            seen += 1
    assert seen == 4
