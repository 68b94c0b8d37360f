"""The console script never shows a traceback: random argument lists exit 0, 1 or 2.

Arguments are drawn from a vocabulary of each subcommand's flags and of values,
good and bad (zero, negative, non-integer, NaN, inf, malformed sizes), with
image sizes kept small so that runs which do start a check stay fast.
(``--certify``, ``--torch`` and the ``prove``/``plot`` subcommands have their
own tests; they are left out here for speed.)
"""

import contextlib
import io

from hypothesis import given
from hypothesis import strategies as st

from attn_expressivity import cli

SIZES = ["1", "2", "3", "5", "3x2", "2x3x2", "0", "-1", "2.5", "x", "3x", "nan", ""]
NUMBERS = ["0", "1", "2", "-1", "0.5", "1e-6", "40", "inf", "-inf", "nan", "1e400", "abc", ""]
VOCAB = {
    "verify": {"--ndim": SIZES, "--kernel-size": SIZES, "--in-channels": SIZES,
               "--out-channels": SIZES, "--image-size": ["1", "2", "3", "4", "5x3", "0", "-2", "1.5",
                                                         "2x2x2", "x"],
               "--alpha": NUMBERS, "--padding": ["same", "valid", "0", "1", "2x1", "-1", "full"],
               "--padding-mode": ["zeros", "reflect", "replicate", "circular", "mirror", ""],
               "--stride": SIZES, "--dilation": SIZES, "--groups": SIZES, "--seed": ["0", "1", "-3", "z"],
               "--no-bias": None, "--json": None, "--path": ["auto", "dense", "separable", "fast"]},
    "derive": {"--ndim": ["1", "2", "3", "0", "-1", "2.0", "q"], "--anisotropic": None, "--linear": None},
    "alpha": {"--tolerance": NUMBERS, "--ndim": SIZES, "--scale": NUMBERS, "--json": None},
}
EXTRA = ["--help", "-h", "--bogus", "extra", "--", "-1"]


@st.composite
def argv(draw):
    command = draw(st.sampled_from(sorted(VOCAB) + ["", "nonsense"]))
    args = [command] if command else []
    flags = VOCAB.get(command, {})
    for _ in range(draw(st.integers(0, 5))):
        if flags and draw(st.integers(0, 9)):
            flag = draw(st.sampled_from(sorted(flags)))
            values = flags[flag]
            args.append(flag)
            if values is not None and draw(st.integers(0, 19)):
                args.append(draw(st.sampled_from(values)))
        else:
            args.append(draw(st.sampled_from(EXTRA)))
    if command == "verify" and "--image-size" not in args:
        args += ["--image-size", "4"]                 # keep the checks small
    if command == "verify" and not any(a in args for a in ("--in-channels", "--out-channels")):
        args += ["--in-channels", "2", "--out-channels", "2"]
    return args


def run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(args)
        except SystemExit as exc:                      # --help
            status = exc.code
    return status, out.getvalue(), err.getvalue()


@given(args=argv())
def test_cli_exits_0_1_or_2_without_traceback(args):
    status, out, err = run(args)
    assert status in (0, 1, 2), (args, status, err)
    assert "Traceback" not in err + out, (args, err)
    if status == 2:
        assert err.count("\n") == 1 and err.startswith("attn-expressivity"), (args, err)
    if status == 0 and not ({"--help", "-h"} & set(args)):
        assert out, args


def test_help_exits_0():
    status, out, _ = run(["verify", "--help"])
    assert status == 0 and "--kernel-size" in out
