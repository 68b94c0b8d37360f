"""The README's example runs and says what the README claims."""

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    out = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "True True"


def test_readme_names_the_test_command_ci_runs():
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    command = 'python -m pip install -e ".[test]" && python -m pytest'
    assert command in text and command in ci


def test_readme_torch_figures_are_current(capsys):
    """The README quotes the error and bound of its `verify --torch` example: rerun it."""
    import pytest

    pytest.importorskip("torch")
    from attn_expressivity.cli import main

    text = README.read_text(encoding="utf-8")
    command = re.search(r"attn-expressivity (verify --torch[^`]*?)\n```", text, flags=re.S).group(1)
    argv = command.replace("\\\n", " ").split()
    assert main(argv) == 0
    out = capsys.readouterr().out
    err = float(re.search(r"max \|MHSA - conv\|\s+(\S+)", out).group(1))
    bound = float(re.search(r"bound\s+(\S+)\s+=", out).group(1))
    quoted = re.search(r"reports (\S+) for the package's check.*?bound of\s+(\S+) \(float64\)",
                       text, flags=re.S)
    assert f"{err:.1e}" == quoted.group(1) and f"{bound:.1e}" == quoted.group(2)
