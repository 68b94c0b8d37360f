import json
import subprocess
import sys

import pytest

from attn_expressivity.cli import main


def test_verify_default_passes(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "kernel (3, 3)" in out and "8 -> 16 channels" in out


def test_verify_json(capsys):
    assert main(["verify", "--kernel-size", "3x2", "--image-size", "7x5", "--alpha", "4",
                 "--in-channels", "2", "--out-channels", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["holds"] is True and report["config"]["kernel_size"] == [3, 2]
    assert report["max_abs_error"] <= report["bound"]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["verify", "--alpha", "-1"], "--alpha: expected a number >= 0"),
        (["verify", "--kernel-size", "0"], "--kernel-size: sizes must be >= 1"),
        (["verify", "--padding", "full"], "--padding: expected 'same', 'valid'"),
        (["verify", "--groups", "3"], "`groups` (3) must divide"),
        (["verify", "--padding-mode", "mirror"], "`padding_mode` must be one of"),
        (["verify", "--image-size", "2", "--padding", "valid"], "kernel larger than the padded input"),
        (["nonsense"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_exit_codes():
    ok = subprocess.run([sys.executable, "-m", "attn_expressivity.cli", "verify", "--image-size", "6"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "attn_expressivity.cli", "verify", "--alpha", "nan"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
