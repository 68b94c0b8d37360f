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
