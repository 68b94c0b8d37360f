"""What a certified instance check returns: :class:`CertificationReport`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..balls.backends import DEFAULT_PRECISION

__all__ = ["CertificationReport"]


@dataclass
class CertificationReport:
    """The outcome of :func:`certify_layer`.

    Attributes
    ----------
    holds : bool
        Every output element was proved to satisfy
        ``|MHSA_exact − conv_exact| <= epsilon`` (and every head has the
        quadratic form the leak bound needs).
    epsilon : float
        The bound, ``Σ_h (2 L_h S_h + F_h)``, rounded up.
    leak : float
        The largest per-head leak bound ``L_h`` (upper end).
    scale : float
        ``Σ_h S_h``, ``S_h = max_k ‖x_k W_val^(h) W_out^(h)‖_∞`` (upper end).
    factorisation_allowance : float
        ``Σ_h F_h``, ``F_h = max_k ‖x_k‖_1 τ_h``.
    max_abs_difference : float
        Certified upper bound on ``max |MHSA_exact − conv_exact|``.
    float_deviation : float
        Certified upper bound on ``max |layer(x) − MHSA_exact(x)|``: how far
        the floating-point layer is from the exact one on this input.
    n_elements, n_certified : int
    failures : list of dict
        Up to 10 elements that were not certified: ``element`` (batch, pixel
        and channel indices), ``status`` ("violated" when the difference is
        proved to exceed ``epsilon``, "undecided" otherwise), ``difference``
        (its enclosure) and ``heads`` (heads whose own share of the bound is
        proved exceeded, with their discrepancy).
    head_issues : list of dict
        Heads whose scores are not ``−α‖δ − Δ_h‖² + const`` (the bound does
        not apply) or whose factorisation residual ``max|W_val W_out − W_Δh|``
        exceeds the allowance ``τ_h``.
    residuals : list of float
        Per head, a certified upper bound on ``max|W_val^(h) W_out^(h) − W_Δh|``.
    backend : str
    precision : int
        Bits used for the final pass.
    seconds : float
    """

    holds: bool
    epsilon: float
    leak: float
    scale: float
    factorisation_allowance: float
    max_abs_difference: float
    float_deviation: float
    n_elements: int
    n_certified: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    head_issues: list[dict[str, Any]] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)
    backend: str = ""
    precision: int = DEFAULT_PRECISION
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable account of what was proved."""
        lines = [
            f"certified ({self.backend}, {self.precision} bits, {self.seconds:.2f} s): "
            f"{self.n_certified}/{self.n_elements} elements with "
            f"|MHSA_exact - conv_exact| <= eps = {self.epsilon:.3e}",
            f"  eps = 2 L S + F: L <= {self.leak:.3e}, S <= {self.scale:.3e}, "
            f"F = {self.factorisation_allowance:.3e}; max |difference| <= {self.max_abs_difference:.3e}",
            f"  float layer within {self.float_deviation:.3e} of the exact-arithmetic layer",
        ]
        for issue in self.head_issues:
            lines.append(f"  head {issue['head']}: {issue['reason']}")
        for f in self.failures:
            heads = ", ".join(f"head {h['head']}" for h in f["heads"]) or "no single head"
            lines.append(
                f"  {f['status']} at element {tuple(f['element'])}: difference in "
                f"[{f['difference'][0]:.3e}, {f['difference'][1]:.3e}] ({heads})"
            )
        not_certified = self.n_elements - self.n_certified
        if not_certified > len(self.failures):
            lines.append(f"  ({len(self.failures)} of {not_certified} uncertified elements shown)")
        lines.append(f"  {'CERTIFIED' if self.holds else 'NOT CERTIFIED'}")
        return "\n".join(lines)
