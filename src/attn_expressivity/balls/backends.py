"""Ball (interval) arithmetic back-ends: python-flint's ``arb`` and ``mpmath.iv``.

Two back-ends give rigorous enclosures: python-flint's ``arb`` (the optional
extra ``certify``; fast, C) and ``mpmath.iv`` (pure Python, always available
because sympy depends on mpmath). ``backend=None`` picks flint when it is
installed, else mpmath. A ball's ends are read back as floats rounded
*outwards* (upper ends up, lower ends down), so a float reported from a ball
is a rigorous bound on the exact real number, not an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import OptionalDependencyError, ParameterTypeError, ParameterValueError

__all__ = ["BACKENDS", "DEFAULT_PRECISION", "Balls", "available_backends", "dyadic_to_float",
           "select_backend"]

#: The ball-arithmetic back-ends, in the order ``backend=None`` tries them.
BACKENDS = ("flint", "mpmath")

#: Working precision in bits of the enclosures (raised automatically by the
#: certified instance check when an element is undecided at this precision).
DEFAULT_PRECISION = 128


class Balls:
    """A minimal ball-arithmetic interface; balls support ``+ - * /`` and ``abs``."""

    name = ""

    @contextmanager
    def precision(self, prec: int) -> Iterator[None]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def num(self, value: float | int | Fraction) -> Any:  # pragma: no cover - abstract
        """A ball holding ``value`` (exact for floats and ints that fit the precision)."""
        raise NotImplementedError

    def exp(self, ball: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def sqrt(self, ball: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def pi(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def zero_to(self, ball: Any) -> Any:  # pragma: no cover - abstract
        """A ball containing ``[0, upper(ball)]``."""
        raise NotImplementedError

    def endpoints(self, ball: Any) -> tuple[tuple[int, int], tuple[int, int]]:  # pragma: no cover
        """``((man_lo, exp_lo), (man_hi, exp_hi))``: the ends as ``man · 2**exp``."""
        raise NotImplementedError

    # derived -----------------------------------------------------------------
    def upper(self, ball: Any) -> float:
        """The upper end, rounded up to a float."""
        return dyadic_to_float(*self.endpoints(ball)[1], up=True)

    def lower(self, ball: Any) -> float:
        """The lower end, rounded down to a float."""
        return dyadic_to_float(*self.endpoints(ball)[0], up=False)

    def nonneg(self, ball: Any) -> bool:
        """Whether every point of the ball is ``>= 0``."""
        return self.endpoints(ball)[0][0] >= 0

    def negative(self, ball: Any) -> bool:
        """Whether every point of the ball is ``< 0``."""
        return self.endpoints(ball)[1][0] < 0


class FlintBalls(Balls):
    name = "flint"

    def __init__(self) -> None:
        import flint

        self._flint = flint

    @contextmanager
    def precision(self, prec: int) -> Iterator[None]:
        with self._flint.ctx.workprec(prec):
            yield

    def num(self, value: float | int | Fraction) -> Any:
        if isinstance(value, Fraction):
            return self._flint.arb(self._flint.fmpq(value.numerator, value.denominator))
        return self._flint.arb(value)

    def exp(self, ball: Any) -> Any:
        return ball.exp()

    def sqrt(self, ball: Any) -> Any:
        return ball.sqrt()

    def pi(self) -> Any:
        return self._flint.arb.pi()

    def zero_to(self, ball: Any) -> Any:
        return self._flint.arb(0).union(ball.upper())

    def endpoints(self, ball: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        if not ball.is_finite():
            raise ArithmeticError(f"non-finite ball {ball}")
        lo, hi = ball.lower().man_exp(), ball.upper().man_exp()
        return (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1]))


class MpmathBalls(Balls):
    name = "mpmath"

    def __init__(self) -> None:
        import mpmath

        self._iv = mpmath.iv
        self._mpmath = mpmath

    @contextmanager
    def precision(self, prec: int) -> Iterator[None]:
        old = self._iv.prec
        self._iv.prec = prec
        try:
            yield
        finally:
            self._iv.prec = old

    def num(self, value: float | int | Fraction) -> Any:
        if isinstance(value, Fraction):
            return self._iv.mpf(value.numerator) / value.denominator
        return self._iv.mpf(value)

    def exp(self, ball: Any) -> Any:
        return self._iv.exp(ball)

    def sqrt(self, ball: Any) -> Any:
        return self._iv.sqrt(ball)

    def pi(self) -> Any:
        return self._iv.pi

    def zero_to(self, ball: Any) -> Any:
        return self._iv.mpf([0, ball.b])

    def endpoints(self, ball: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        ends = []
        for sign, man, exp, bc in ball._mpi_:
            if man == 0 and bc != 0:                          # inf / nan special values
                raise ArithmeticError(f"non-finite interval {ball}")
            ends.append((-man if sign else man, exp))
        return ends[0], ends[1]


def dyadic_to_float(man: int, exp: int, *, up: bool) -> float:
    """``man · 2**exp`` rounded up (``up``) or down to a float, huge exponents included."""
    if man == 0:
        return 0.0
    magnitude = man.bit_length() if man > 0 else (-man).bit_length()
    top = magnitude + exp                                      # 2**(top-1) <= |value| < 2**top
    if top < -1080:                                            # below half the smallest subnormal
        tiny = math.nextafter(0.0, 1.0)
        if man > 0:
            return tiny if up else 0.0
        return -0.0 if up else -tiny
    if top > 1030:
        if man > 0:
            return math.inf if up else np.finfo(np.float64).max.item()
        return -np.finfo(np.float64).max.item() if up else -math.inf
    exact = Fraction(man) * (Fraction(2) ** exp)
    value = float(exact)                                       # correctly rounded to nearest
    if up and Fraction(value) < exact:
        value = math.nextafter(value, math.inf)
    elif not up and Fraction(value) > exact:
        value = math.nextafter(value, -math.inf)
    return value


_BACKEND_CACHE: dict[str, Balls] = {}


def available_backends() -> tuple[str, ...]:
    """The ball-arithmetic back-ends installed here, best first.

    Examples
    --------
    >>> "mpmath" in available_backends()
    True
    """
    found = []
    for name in BACKENDS:
        try:
            select_backend(name)
        except OptionalDependencyError:
            continue
        found.append(name)
    return tuple(found)


def select_backend(backend: object) -> Balls:
    """Resolve ``backend`` ("flint", "mpmath" or None) to a back-end object."""
    if backend is not None and not isinstance(backend, str):
        raise ParameterTypeError(
            f"`backend` must be one of {BACKENDS} or None, got {type(backend).__name__}"
        )
    if backend is None:
        try:
            return select_backend("flint")
        except OptionalDependencyError:
            return select_backend("mpmath")
    if backend not in BACKENDS:
        raise ParameterValueError(f"`backend` must be one of {BACKENDS} or None, got {backend!r}")
    if backend not in _BACKEND_CACHE:
        try:
            _BACKEND_CACHE[backend] = FlintBalls() if backend == "flint" else MpmathBalls()
        except ImportError:
            raise OptionalDependencyError(
                f"backend={backend!r} needs {'python-flint' if backend == 'flint' else 'mpmath'}, "
                f"which is not installed; install the extra with "
                f"`pip install 'attn-expressivity[certify]'` or use backend='mpmath'"
            ) from None
    return _BACKEND_CACHE[backend]
