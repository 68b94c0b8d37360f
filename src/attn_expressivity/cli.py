"""The ``attn-expressivity`` console script: argument parsing only.

Each subcommand is registered by an ``_add_<name>`` function that declares its
arguments and binds a ``_run_<name>`` function; the logic lives in the library
modules. Exit status: 0 success, 1 a check failed, 2 bad usage (one line on
stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence

from .errors import AttnExpressivityError

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """Raised by the parser instead of printing usage and calling sys.exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _size_tuple(text: str) -> tuple[int, ...]:
    """Parse ``"3"`` or ``"3x5"`` or ``"3,5"`` into a tuple of positive ints."""
    parts = text.replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or AxB, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return values


def _padding(text: str) -> str | tuple[int, ...]:
    if text in ("same", "valid"):
        return text
    parts = text.replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'same', 'valid', an integer or AxB, got {text!r}"
        ) from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"padding must be >= 0, got {text!r}")
    return values


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {value}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'inf', got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'inf', got {text!r}")
    if math.isinf(value) and text.strip().lower().lstrip("+") not in ("inf", "infinity"):
        raise argparse.ArgumentTypeError(
            f"alpha overflows float64: {text!r} is above the largest float (1.8e308); "
            f"write 'inf' for hard attention")
    return value


# --------------------------------------------------------------------------- verify


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="build the MHSA layer for a random convolution and check it")
    p.add_argument("--ndim", type=int, default=None, help="spatial axes (default: from --kernel-size, else 2)")
    p.add_argument("--kernel-size", type=_size_tuple, default=(3,), help="K or AxB (default 3)")
    p.add_argument("--in-channels", type=int, default=8, help="D_in (default 8)")
    p.add_argument("--out-channels", type=int, default=16, help="D_out (default 16)")
    p.add_argument("--image-size", type=_size_tuple, default=(32,), help="side or AxB (default 32)")
    p.add_argument("--alpha", type=_alpha, default=None,
                   help="inverse width (default: the smallest alpha whose leak term is below float64 rounding)")
    p.add_argument("--padding", type=_padding, default="same", help="'same', 'valid', N or AxB")
    p.add_argument("--padding-mode", default="zeros", help="zeros, reflect, replicate or circular")
    p.add_argument("--stride", type=_size_tuple, default=(1,))
    p.add_argument("--dilation", type=_size_tuple, default=(1,))
    p.add_argument("--groups", type=int, default=1)
    p.add_argument("--no-bias", action="store_true", help="convolution without bias")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--torch", action="store_true",
                   help="also run the layer in PyTorch (to_torch, both routes) against torch.nn.ConvNd; "
                        "fails when it disagrees beyond the bound (needs torch==2.13.0)")
    p.add_argument("--certify", action="store_true",
                   help="also prove |MHSA - conv| <= eps elementwise in ball arithmetic "
                        "(small instances only, e.g. --image-size 8 --in-channels 4 --out-channels 4)")
    p.add_argument("--backend", choices=("flint", "mpmath"), default=None,
                   help="ball arithmetic for --certify (default: flint when installed, else mpmath)")
    p.add_argument("--path", choices=("auto", "dense", "separable"), default="auto",
                   help="attention path (default auto: separable for these layers)")
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from .bounds.leak import alpha_for_tolerance
    from .convolution.instances import random_instance
    from .verify import check_request, verify

    check_request(kernel_size=args.kernel_size, in_channels=args.in_channels,
                  out_channels=args.out_channels, image_size=args.image_size, ndim=args.ndim,
                  groups=args.groups)
    inst = random_instance(
        kernel_size=args.kernel_size, in_channels=args.in_channels,
        out_channels=args.out_channels, image_size=args.image_size, ndim=args.ndim,
        groups=args.groups, bias=not args.no_bias, seed=args.seed,
    )
    alpha = args.alpha
    if alpha is None:
        # default: the smallest alpha whose leak per head is at most float64's unit roundoff
        alpha = alpha_for_tolerance(2.0**-52, inst.weight.ndim - 2)
    options = dict(stride=_scalar(args.stride), padding=_scalar(args.padding),
                   dilation=_scalar(args.dilation), groups=args.groups, padding_mode=args.padding_mode)
    report = verify(inst.weight, inst.x, inst.bias, alpha=alpha, certify=args.certify,
                    backend=args.backend, path=args.path, **options)
    torch_errors: dict[str, float] | None = None
    torch_bound = report.bound
    if args.torch:
        from .bounds.error import error_bound
        from .interop.torch import cross_check
        from .theorem.construction import conv_to_mhsa

        layer = conv_to_mhsa(inst.weight, inst.bias, alpha=alpha, **options)
        torch_errors = cross_check(layer, inst.x)
        # PyTorch sums in its own order: held to the per-channel a-priori bound of the
        # fast path, which assumes no summation order, not to the traced path's
        torch_bound = max(report.bound, error_bound(layer, inst.x, path=args.path)["bound"])
    torch_holds = torch_errors is None or all(e <= torch_bound for e in torch_errors.values())
    if args.json:
        from .verify import json_safe

        out = report.to_dict()
        if torch_errors is not None:
            out["torch"] = json_safe(dict(torch_errors, bound=torch_bound, holds=torch_holds))
        print(json.dumps(out, indent=2, allow_nan=False))
    else:
        print(report.summary())
        if torch_errors is not None:
            print(f"  PyTorch: max |to_torch(layer) - torch conv|  "
                  f"{torch_errors['max_abs_error_sdpa']:.3e} (SDPA), "
                  f"{torch_errors['max_abs_error_multihead']:.3e} (MultiheadAttention); "
                  f"max |conv - torch conv| {torch_errors['max_abs_error_conv']:.3e}")
            print(f"  {'PASS' if torch_holds else 'FAIL'}: PyTorch errors "
                  f"{'<=' if torch_holds else '>'} bound ({torch_bound:.3e}, per channel: PyTorch "
                  f"sums in its own order)")
    return EXIT_OK if report.holds and torch_holds else EXIT_FAIL


def _strict(value: object) -> object:
    """Strict JSON: non-finite floats become None or "inf"."""
    from .verify import json_safe

    return json_safe(value)


def _scalar(value: object) -> object:
    """A one-element tuple from the parser means "the same on every axis"."""
    if isinstance(value, tuple) and len(value) == 1:
        return value[0]
    return value


# --------------------------------------------------------------------------- prove / derive


def _add_prove(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prove", help="discharge every proof obligation of the paper's argument")
    p.add_argument("--claim", action="append", default=None, metavar="CLAIM",
                   help="only the obligations of this claim, e.g. 'Lemma 2' (repeatable)")
    p.add_argument("--details", action="store_true", help="print what each check found")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--markdown", metavar="FILE", default=None,
                   help="write the derivation document (Markdown) to FILE")
    p.add_argument("--latex", metavar="FILE", default=None,
                   help="write the derivation document (LaTeX) to FILE")
    p.add_argument("--coq", action="store_true",
                   help="instead, run the Coq development's check (proofs/coq/check: build from "
                        "clean, no Admitted/Axiom, Print Assumptions on an allowlist) and print "
                        "its theorem table; needs Coq with MathComp and mathcomp-analysis")
    p.add_argument("--coq-dir", metavar="DIR", default=None,
                   help="the Coq development for --coq (default: proofs/coq of the source checkout)")
    p.set_defaults(run=_run_prove)


def _run_prove(args: argparse.Namespace) -> int:
    from . import symbolic

    if args.coq or args.coq_dir is not None:
        return _run_prove_coq(args)
    outputs = [(path, fmt) for path, fmt in ((args.markdown, "markdown"), (args.latex, "latex"))
               if path is not None]
    handles = [(open(path, "w", encoding="utf-8"), fmt) for path, fmt in outputs]  # fail early
    report = symbolic.prove(claims=args.claim)
    for fh, fmt in handles:
        with fh:
            fh.write(symbolic.derivation_document(report, fmt=fmt))
    print(report.to_json() if args.json else report.table(details=args.details))
    return EXIT_OK if report.holds else EXIT_FAIL


def _run_prove_coq(args: argparse.Namespace) -> int:
    from . import symbolic

    if not args.coq:
        raise _UsageError("attn-expressivity prove: error: --coq-dir needs --coq")
    other = [flag for flag, given in (("--claim", args.claim is not None), ("--details", args.details),
                                      ("--markdown", args.markdown is not None),
                                      ("--latex", args.latex is not None)) if given]
    if other:
        raise _UsageError(f"attn-expressivity prove: error: {', '.join(other)} applies to the "
                          "sympy obligations, not to --coq")
    report = symbolic.coq_check(args.coq_dir)
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(report.table())
    return EXIT_OK if report.holds else EXIT_FAIL


def _add_derive(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("derive", help="derive the head vector v by matching coefficients")
    p.add_argument("--ndim", type=int, default=2, help="spatial dimensions D (default 2)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--anisotropic", action="store_true",
                      help="score -1/2 (δ-Δ)ᵀ Σ⁻¹ (δ-Δ) with linear and quadratic monomials")
    kind.add_argument("--linear", action="store_true",
                      help="the failing linear-only encoding r_δ = δ")
    p.set_defaults(run=_run_derive)


def _run_derive(args: argparse.Namespace) -> int:
    from . import symbolic

    if args.anisotropic:
        derivation = symbolic.derive_anisotropic(args.ndim)
    elif args.linear:
        derivation = symbolic.derive_linear(args.ndim)
    else:
        derivation = symbolic.derive_isotropic(args.ndim)
    print(symbolic.format_derivation(derivation))
    return EXIT_OK


# --------------------------------------------------------------------------- plot


def _figure_name(text: str) -> str:
    names = ("heads", "alpha", "border", "all")
    if text not in names:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {text!r}")
    return text


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw the figures (heads, alpha, border) as PNG files")
    p.add_argument("figure", nargs="*", type=_figure_name, metavar="FIGURE",
                   help="which figures (default: all): heads = every head's attention and the "
                   "centres with mass contours; alpha = error and bound against alpha; "
                   "border = the border effect with and without padding")
    p.add_argument("--all", action="store_true", help="all three figures")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files (created)")
    p.add_argument("--dpi", type=_int_between(10, 1200), default=90,
                   help="resolution, 10 to 1200 (default 90)")
    p.set_defaults(run=_run_plot)


def _run_plot(args: argparse.Namespace) -> int:
    from .plot import FIGURES, save_figures

    which = list(FIGURES) if args.all or not args.figure or "all" in args.figure else args.figure
    for path in save_figures(args.out, list(dict.fromkeys(which)), dpi=args.dpi):
        print(path)
    return EXIT_OK


# --------------------------------------------------------------------------- alpha


def _add_alpha(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alpha", help="the certified alpha a tolerance needs, or the per-dtype table")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tolerance", type=_positive_float, default=None,
                      help="target error: the smallest alpha with 2 * leak_bound(alpha) * scale <= TOL")
    what.add_argument("--dtypes", action="store_true",
                      help="per float type: alpha from the bound and alpha measured in that type")
    p.add_argument("--ndim", type=_int_between(1, 3), default=2,
                   help="spatial dimensions D, 1 to 3 (default 2)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="data factor S = sum_h max_k |x_k W_h|_inf (default 1: error relative to S)")
    p.add_argument("--backend", choices=("flint", "mpmath"), default=None,
                   help="ball arithmetic (default: flint when installed, else mpmath)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=_run_alpha)


def _run_alpha(args: argparse.Namespace) -> int:
    from .balls.backends import select_backend
    from .bounds.dtypes import dtype_alpha_table, format_dtype_table
    from .bounds.leak import ALPHA_RESOLUTION, alpha_for_tolerance

    if args.dtypes:
        if args.backend is not None or args.scale != 1.0:
            raise _UsageError("attn-expressivity alpha: --backend and --scale go with --tolerance, "
                              "not --dtypes")
        rows = dtype_alpha_table(ndim=args.ndim)
        print(json.dumps(_strict(rows), indent=2, allow_nan=False) if args.json else format_dtype_table(rows))
        return EXIT_OK
    backend = select_backend(args.backend).name
    alpha = alpha_for_tolerance(args.tolerance, args.ndim, scale=args.scale, backend=backend)
    if args.json:
        print(json.dumps(_strict({"alpha": alpha, "tolerance": args.tolerance, "ndim": args.ndim,
                                  "scale": args.scale, "backend": backend,
                                  "resolution": ALPHA_RESOLUTION}), indent=2, allow_nan=False))
    else:
        print(f"alpha = {alpha!r}  (proved in ball arithmetic with {backend}: "
              f"2 * leak_bound(alpha, {args.ndim}) * {args.scale!r} <= {args.tolerance!r}; "
              f"smallest to a relative {ALPHA_RESOLUTION:g})")
    return EXIT_OK


# --------------------------------------------------------------------------- verify-model


def _add_verify_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify-model",
        help="convert every convolution of a PyTorch network to attention and bound the outputs' difference")
    p.add_argument("factory", help="package.module:function returning the torch.nn.Module "
                                   "(called with no argument; the module must be importable)")
    p.add_argument("--input-size", type=_size_tuple, required=True,
                   help="one input without the batch axis, e.g. 3x224x224")
    p.add_argument("--batch", type=_int_between(1, 1 << 16), default=1, help="batch size (default 1)")
    p.add_argument("--alpha", type=_alpha, default=40.0, help="inverse width of the heads (default 40; inf)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="the dtype both networks run in (default float64)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds torch's generator before the factory is called (random weights) and "
                        "draws the standard-normal input (default 0)")
    p.add_argument("--device", default="cpu", help="torch device to run on, e.g. cuda (default cpu)")
    p.add_argument("--max-outputs", type=_int_between(0, 1 << 30), default=256,
                   help="above this many output elements only the coarse bound is computed (default 256)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr (default: when tqdm is installed and stderr is a terminal)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_run_verify_model)


def _run_verify_model(args: argparse.Namespace) -> int:
    from .interop.torch import _require_torch

    torch = _require_torch()
    from .interop.verify_model import model_from_factory, verify_model

    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)           # raises for a device this build or machine lacks
    except (RuntimeError, AssertionError) as exc:  # torch asserts when it was built without CUDA
        message = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
        raise _UsageError(f"attn-expressivity verify-model: argument --device: {args.device!r} is not "
                          f"available here ({message.rstrip('.')})") from None
    torch.manual_seed(args.seed)
    model = model_from_factory(args.factory).to(getattr(torch, args.dtype)).eval().to(device)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((args.batch,) + args.input_size, generator=gen, dtype=getattr(torch, args.dtype))
    x = x.to(device)
    report = verify_model(model, x, alpha=args.alpha, max_outputs=args.max_outputs,
                         progress=args.progress)
    print(json.dumps(report.to_dict(), indent=2, allow_nan=False) if args.json else report.summary())
    return EXIT_OK if report.holds else EXIT_FAIL


# --------------------------------------------------------------------------- learn

_LEARN_EXTRA = (("torch", "torch"), ("skimage", "scikit-image"), ("tqdm", "tqdm"), ("matplotlib", "matplotlib"))


def _require_learn_extra() -> None:
    """One line naming the extra when a package of it is missing (exit 2 through main)."""
    import importlib.util

    from .errors import OptionalDependencyError

    missing = [name for module, name in _LEARN_EXTRA if importlib.util.find_spec(module) is None]
    if missing:
        raise OptionalDependencyError(
            f"learn needs the learn extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'attn-expressivity[learn]'"
        )


def _add_learn(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("learn", help="train attention layers (teacher convolution, texture classification) "
                                     "and read what they learned (extra: learn)")
    p.add_argument("experiment", nargs="?", choices=("teacher", "classify"),
                   help="one run: teacher (learn a fixed convolution) or classify (texture patches)")
    p.add_argument("--all", action="store_true",
                   help="every experiment on --seeds seeds, the criteria (PASS/FAIL), the table and the figures")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for JSON results and figures (required with --all; runs are cached there)")
    p.add_argument("--seed", type=_int_between(0, 2**31 - 1), default=0)
    p.add_argument("--seeds", type=_int_between(1, 100), default=5, help="with --all: seeds 0..N-1 (default 5)")
    p.add_argument("--jobs", type=_int_between(1, 64), default=1,
                   help="with --all: runs at a time, one process and one thread each (default 1)")
    p.add_argument("--content", action="store_true",
                   help="with --all: also the learned + content classifier (about forty times the cost)")
    p.add_argument("--content-seeds", type=_int_between(1, 100), default=None,
                   help="with --content: on the first N seeds only (default: every seed)")
    p.add_argument("--steps", type=_int_between(1, 10**6), default=None, help="training steps (default: the experiment's)")
    p.add_argument("--kernel-size", type=_int_between(1, 9), default=3, help="teacher: kernel size (default 3)")
    p.add_argument("--dilation", type=_int_between(1, 7), default=2, help="teacher: dilation (default 2)")
    p.add_argument("--heads", type=_int_between(1, 64), default=None,
                   help="attention heads (default: 16 for the teacher, 9 for classify)")
    p.add_argument("--objective", choices=("population", "sampled"), default="population",
                   help="teacher: the exact expected loss over Gaussian images, or sampled minibatches")
    p.add_argument("--model", choices=("cnn", "quadratic", "relative", "relative_content", "shuffled"),
                   default="quadratic", help="classify: which network (default quadratic)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_learn)


def _run_learn(args: argparse.Namespace) -> int:
    if args.all == (args.experiment is not None):
        raise _UsageError("attn-expressivity learn: give one experiment (teacher or classify) or --all")
    if args.all and args.out is None:
        raise _UsageError("attn-expressivity learn: --all needs --out DIR")
    if args.experiment == "classify" and args.model == "cnn" and args.heads is not None:
        raise _UsageError(f"attn-expressivity learn: --heads {args.heads} has no meaning with --model cnn "
                          "(a convolutional network has no attention heads)")
    _require_learn_extra()
    if args.all:
        from .learn.runner import run_all

        overrides = {"teacher": {"steps": args.steps}, "classify": {"steps": args.steps}} if args.steps else {}
        summary = run_all(args.out, seeds=args.seeds, jobs=args.jobs, content=args.content,
                          content_seeds=args.content_seeds,
                          show_progress=not args.quiet, overrides=overrides,
                          log=lambda line: print(line, file=sys.stderr))
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print((__import__("pathlib").Path(args.out) / "results.md").read_text(encoding="utf-8"))
        return EXIT_OK if all(c["verdict"] == "PASS" for c in summary["criteria"]) else EXIT_FAIL
    return _run_learn_one(args)


def _run_learn_one(args: argparse.Namespace) -> int:
    import pathlib

    changes = {"seed": args.seed} | ({"steps": args.steps} if args.steps else {})
    if args.heads is not None:
        changes["heads"] = args.heads
    if args.experiment == "teacher":
        from .learn.teacher import TeacherConfig, train_teacher

        cfg = TeacherConfig(kernel_size=args.kernel_size, dilation=args.dilation, objective=args.objective, **changes)
        result = train_teacher(cfg, show_progress=not args.quiet)
        module, key = result.pop("layer"), "teacher_dilated"
        line = (f"relative MSE {result['relative_mse']:.3e} (Eckart-Young bound {result['lower_bound']:.3e}); "
                f"worst teacher offset {result['worst_match']:.3f} px from a head; {result['seconds']:.1f} s")
    else:
        from .learn.classify import ClassifyConfig, train_classifier

        result = train_classifier(ClassifyConfig(model=args.model, **changes), show_progress=not args.quiet)
        module, key = result.pop("network"), args.model
        distances = ", ".join(f"{layer['mean_attention_distance']:.2f}" for layer in result["layers"])
        line = (f"{args.model}: test accuracy {result['test_accuracy']:.3f} (train {result['train_accuracy']:.3f}); "
                + (f"mean attention distance per layer {distances} px; " if distances else "")
                + f"{result['seconds']:.1f} s")
    if args.out is not None:
        import torch

        from .learn.figures import draw_all

        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = f"{args.experiment}-{key}-seed{args.seed}"
        (out / f"{name}.json").write_text(json.dumps(result), encoding="utf-8")
        torch.save(module.state_dict(), out / f"{name}.pt")
        for path in draw_all({key: [result]}, out / "figures"):
            print(path, file=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else line)
    return EXIT_OK


# --------------------------------------------------------------------------- main

_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_verify, _add_prove, _add_derive, _add_plot, _add_alpha]
_SUBCOMMANDS.append(_add_learn)
_SUBCOMMANDS.append(_add_verify_model)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="attn-expressivity",
        description="Multi-head self-attention expresses any convolution "
        "(Cordonnier, Loukas & Jaggi, ICLR 2020): build, check, prove.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; returns the exit status (0 ok, 1 check failed, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.run(args))
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except AttnExpressivityError as exc:
        print(f"attn-expressivity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("attn-expressivity: error: the request does not fit in this machine's memory; "
              "use a smaller image, fewer channels or a smaller kernel", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:                 # an OSError: handled first
        return _quiet_broken_pipe()
    except OSError as exc:
        # a file or folder given on the command line that cannot be written
        print(f"attn-expressivity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _quiet_broken_pipe() -> int:
    """Output piped into a reader that stopped early (e.g. ``| head``): not an error of ours.

    stdout is pointed at devnull so the interpreter's final flush stays quiet.
    """
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
