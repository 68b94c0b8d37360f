import subprocess
import sys


def test_import_is_light():
    code = ("import sys, attn_expressivity; "
            "heavy = [m for m in ('sympy', 'torch', 'matplotlib', 'hypothesis', 'pytest', 'flint', 'mpmath') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_errors_subclass_builtins():
    import attn_expressivity as ae

    for name in ("ShapeError", "ParameterValueError", "NonFiniteError", "HeadDimensionError",
                 "NotSeparableError", "CertificationSizeError"):
        cls = getattr(ae, name)
        assert issubclass(cls, ae.AttnExpressivityError) and issubclass(cls, ValueError)
    assert issubclass(ae.ParameterTypeError, TypeError)
    assert issubclass(ae.OptionalDependencyError, ImportError)


def test_blas_is_held_to_one_thread_inside_the_block():
    """With the ``threads`` extra, ``single_blas_thread`` limits the BLAS pool and restores it."""
    import pytest

    tpc = pytest.importorskip("threadpoolctl", reason='needs the threads extra: pip install "attn-expressivity[threads]"')
    import numpy as np  # noqa: F401  (loads the BLAS library threadpoolctl inspects)

    from attn_expressivity._threads import single_blas_thread

    def blas_threads():
        return [i["num_threads"] for i in tpc.threadpool_info() if i.get("user_api") == "blas"]

    before = blas_threads()
    if not before:
        pytest.skip("numpy's BLAS library is not one threadpoolctl can control here")
    with single_blas_thread():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_without_threadpoolctl_the_block_runs_unchanged(monkeypatch):
    """The extra is optional: without it the block is a no-op, not an error."""
    import builtins

    from attn_expressivity import _threads

    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError("threadpoolctl is not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(_threads, "_CONTROLLER", [])
    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    ran = []
    with _threads.single_blas_thread():
        ran.append(True)
    assert ran == [True] and _threads._CONTROLLER == [None]
