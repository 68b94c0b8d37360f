"""The package's layering (docs/architecture.md) and the size of its functions and classes.

The table in docs/architecture.md is the rule: each row names a room (a subpackage or
top-level module, or a module inside one) and the rooms it may import. The imports are
read from the source with ``ast`` (lazy imports inside functions included), so nothing
has to be imported to check them, and a planted import in a copy of the package must be
caught.
"""

from __future__ import annotations

import ast
import pathlib
import re
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "attn_expressivity"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
BASE = ("errors", "_validation", "_threads")
MAX_FUNCTION_LINES, MAX_CLASS_LINES = 80, 250


# --------------------------------------------------------------------------- reading the rule


def read_rules(path: pathlib.Path = ARCHITECTURE) -> dict[str, tuple[str, ...]]:
    """``{room: rooms it may import}`` from the table of docs/architecture.md."""
    rules = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`[\w.]+`", cells[0]):
            continue
        allowed = tuple(re.findall(r"`([\w.]+)`", cells[2]))
        rules[cells[0].strip("`")] = allowed
    return rules


# --------------------------------------------------------------------------- reading the code


def _module_name(path: pathlib.Path, package: pathlib.Path) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(package: pathlib.Path = PACKAGE) -> dict[str, set[tuple[str, bool]]]:
    """``{module: {(imported module, type_checking_only)}}`` for modules inside the package.

    Module names are relative to the package (``""`` is the package root).
    """
    modules = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[tuple[str, bool]]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if name else []
        pkg = here if is_pkg else here[:-1]
        edges: set[tuple[str, bool]] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)
                   for child in node.body for n in ast.walk(child)}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg[: len(pkg) - node.level + 1]
                    stem = base + (node.module.split(".") if node.module else [])
                elif (node.module or "").split(".")[0] == "attn_expressivity":
                    stem = node.module.split(".")[1:]
                else:
                    continue
                for alias in node.names:
                    sub = ".".join(stem + [alias.name])
                    targets.append(sub if sub in modules else ".".join(stem))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "attn_expressivity":
                        targets.append(".".join(alias.name.split(".")[1:]))
            for t in targets:
                if t != name:
                    edges.add((t, id(node) in guarded))
        graph[name] = edges
    return graph


# --------------------------------------------------------------------------- the checks


def _room(module: str) -> str:
    return module.split(".")[0] if module else "attn_expressivity"


def _matches(target: str, entry: str) -> bool:
    entry = "" if entry == "attn_expressivity" else entry
    return target == entry or target.startswith(entry + ".")


def allowed_targets(module: str, rules: dict[str, tuple[str, ...]]) -> list[str]:
    """What ``module`` may import: its room's row, a row of its own, its room, the base."""
    room = _room(module)
    own = next((rules[k] for k in sorted(rules, key=len, reverse=True)
                if k != room and "." in k and _matches(module, k)), None)
    allowed = list(BASE) + list(rules.get(room, ()))
    inside = [e for e in (own or ()) if _room(e) == room]
    allowed += [e for e in (own or ()) if _room(e) != room]
    allowed += inside if inside else [room]
    return allowed


def layering_violations(graph: dict[str, set[tuple[str, bool]]],
                        rules: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    for module, edges in sorted(graph.items()):
        room = _room(module)
        if room not in rules:
            problems.append(f"{module or 'attn_expressivity'}: room {room!r} has no row in the table")
            continue
        allowed = allowed_targets(module, rules)
        for target, _ in sorted(edges):
            if not any(_matches(target, e) for e in allowed):
                problems.append(f"{module or 'attn_expressivity'} imports {target or 'attn_expressivity'}")
    return problems


def import_cycles(graph: dict[str, set[tuple[str, bool]]]) -> list[list[str]]:
    """Cycles among runtime imports (annotation-only imports left out)."""
    runtime = {m: {t for t, tc in edges if not tc and t in graph} for m, edges in graph.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(runtime[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(runtime):
        if node not in state:
            visit(node, [])
    return cycles


def oversized(package: pathlib.Path = PACKAGE) -> list[str]:
    """Functions over 80 lines and classes over 250, docstrings not counted, unless justified."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            doc_lines = sum(
                (n.body[0].end_lineno - n.body[0].lineno + 1)
                for n in ast.walk(node)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and n.body and isinstance(n.body[0], ast.Expr)
                and isinstance(n.body[0].value, ast.Constant) and isinstance(n.body[0].value.value, str))
            length = node.end_lineno - node.lineno + 1 - doc_lines
            docstring = ast.get_docstring(node) or ""
            if length > limit and "longer than" not in docstring:
                found.append(f"{path.relative_to(package)}:{node.lineno} {node.name} ({length} lines)")
    return found


# --------------------------------------------------------------------------- tests


def test_the_table_has_a_row_for_every_room():
    rules = read_rules()
    rooms = {_room(m) for m in import_graph()}
    assert rooms <= set(rules), rooms - set(rules)
    for row, allowed in rules.items():
        for entry in allowed:
            assert entry == "attn_expressivity" or _room(entry) in rules, (row, entry)


def test_no_import_breaks_a_layer():
    assert layering_violations(import_graph(), read_rules()) == []


def test_no_import_cycle():
    assert import_cycles(import_graph()) == []


def test_functions_and_classes_are_short():
    assert oversized() == []


@pytest.mark.parametrize("module, line, expected", [
    ("convolution/reference.py", "from ..attention.layer import PATHS", "convolution.reference imports attention.layer"),
    ("convolution/reference.py", "from .shifts import shift_set", "convolution.reference imports convolution.shifts"),
    ("bounds/rounding.py", "from ..balls.backends import BACKENDS", "bounds.rounding imports balls.backends"),
    ("attention/layer.py", "    from ..theorem import construction", "attention.layer imports theorem.construction"),
    ("bounds/scale.py", "from ..verify import verify", "bounds.scale imports verify"),
])
def test_a_planted_import_is_caught(tmp_path, module, line, expected):
    """Copy the package, plant one forbidden import (top level or inside a function), check."""
    copy = tmp_path / "attn_expressivity"
    shutil.copytree(PACKAGE, copy)
    path = copy / module
    text = path.read_text(encoding="utf-8")
    if line.startswith("    "):                       # a lazy import inside the first function
        head, sep, rest = text.partition("\n    \"\"\"")
        body = rest.split('"""\n', 1)
        text = head + sep + body[0] + '"""\n' + line + "\n" + body[1]
    else:
        text = text.replace("from __future__ import annotations\n",
                            "from __future__ import annotations\n\n" + line + "\n", 1)
    path.write_text(text, encoding="utf-8")
    assert layering_violations(import_graph(PACKAGE), read_rules()) == []
    assert expected in layering_violations(import_graph(copy), read_rules())


def test_a_planted_cycle_and_a_long_function_are_caught(tmp_path):
    copy = tmp_path / "attn_expressivity"
    shutil.copytree(PACKAGE, copy)
    path = copy / "convolution" / "config.py"
    path.write_text(path.read_text(encoding="utf-8") + "\nfrom .reference import conv  # noqa\n",
                    encoding="utf-8")
    # a cycle is found from whichever of its modules the search reaches first: compare as sets
    assert {"convolution.config", "convolution.reference"} in [set(c) for c in import_cycles(
        import_graph(copy))]
    long = copy / "convolution" / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * 81, encoding="utf-8")
    assert any("long.py:1 f (82 lines)" in o for o in oversized(copy))
