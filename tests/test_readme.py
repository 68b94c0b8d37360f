"""The README's example runs and says what the README claims."""

import math
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
    """The README quotes the error and bound of its `verify --torch` example: rerun it.

    The bound (two significant digits) must be the one the command prints now; the
    error is rounding noise that depends on the BLAS kernel, so it is checked against
    the bound, on this machine and as quoted, never against the quoted digits.
    """
    import pytest

    pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")
    from attn_expressivity.cli import main

    text = README.read_text(encoding="utf-8")
    command = re.search(r"attn-expressivity (verify --torch[^`]*?)\n```", text, flags=re.S).group(1)
    argv = command.replace("\\\n", " ").split()
    assert main(argv) == 0
    out = capsys.readouterr().out
    bound = float(re.search(r"bound\s+(\S+)\s+=", out).group(1))
    torch_bound = float(re.search(r"PyTorch errors <= bound \((\S+), per channel", out).group(1))
    errors = [float(e) for e in re.findall(r"([0-9.]+e[-+][0-9]+) \((?:SDPA|MultiheadAttention)\)", out)]
    error = float(re.search(r"max \|MHSA - conv\|\s+(\S+)", out).group(1))
    assert len(errors) == 2 and max(errors) <= torch_bound and error <= bound
    quoted = re.search(r"reports (\S+) for the package's check.*?bound of\s+(\S+) \(float64\).*?"
                       r"per-channel bound of\s+(\S+) that", text, flags=re.S)
    q_err, q_bound, q_torch = (float(quoted.group(i)) for i in (1, 2, 3))
    for got, want in ((bound, q_bound), (torch_bound, q_torch)):
        half_unit = 0.5 * 10 ** (math.floor(math.log10(want)) - 1)   # two significant digits
        assert abs(got - want) <= half_unit * (1 + 1e-9), (got, want)
    assert q_err <= q_bound
