"""Bounds: the off-target softmax mass (leak) and the output error it causes.

**Leak.** For a quadratic-encoding head centred on ``Δ`` and any query ``q``
whose target ``t = q + Δ`` is in a rectangular key set ``S``, the softmax
weight of key ``k`` is ``e^{−α‖k − t‖²} / Σ_{k' ∈ S} e^{−α‖k' − t‖²}``. The
off-target offsets ``k − t`` are distinct non-zero points of ``Z^D``, so

.. math::
    1 - p_t = 1 - \\frac{1}{1 + \\sum_{k \\ne t} e^{-\\alpha\\|k-t\\|^2}}
            \\le 1 - \\frac{1}{\\sum_{z \\in \\mathbb{Z}^D} e^{-\\alpha\\|z\\|^2}}
            = 1 - \\theta_3(e^{-\\alpha})^{-D},

because the lattice sum factorises into ``D`` one-dimensional sums
``θ₃(x) = Σ_{n∈Z} x^{n²}`` (PAPER.md §3). It is independent of the image size,
about ``2D e^{−α}`` for large ``α``, and equal to the true leak for an interior
query of an infinite image.

**Output error.** With ``y_k^{(h)} = x_k W_val^{(h)} W_out^{(h)}`` and leak
``L``, each head's output ``Σ_k p_k y_k`` differs from ``y_t`` by
``Σ_{k≠t} p_k (y_k − y_t)``, at most ``2 L max_k ‖y_k‖_∞``; summing over heads
gives the a-priori bound ``2 L Σ_h max_k ‖y_k^{(h)}‖_∞``.

**Rigour.** :func:`leak_bound` is the upper end, rounded up to a float, of an
enclosure computed in ball arithmetic (:mod:`attn_expressivity.certify`:
python-flint's ``arb`` when installed, else ``mpmath.iv``), and every decision
of :func:`alpha_for_tolerance` is taken on such an enclosure. The data factor
``S`` is bounded from above in floating point with Higham's standard model
(:func:`scale_factor`) or from a bound on ``‖x‖_∞`` (:func:`scale_from_bound`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from ._validation import as_alpha, as_float_array, as_int
from .certify import _select_backend, certified_leak_bound, leak_term_within
from .errors import ParameterTypeError, ParameterValueError

__all__ = [
    "ALPHA_RESOLUTION",
    "alpha_for_tolerance",
    "dtype_alpha_table",
    "format_dtype_table",
    "gamma",
    "leak_bound",
    "scale_factor",
    "scale_from_bound",
    "unit_roundoff",
]

#: Relative resolution of :func:`alpha_for_tolerance`.
ALPHA_RESOLUTION = 1e-9

_U64 = 2.0**-53


def unit_roundoff(dtype: object) -> float:
    """Unit roundoff ``u = eps / 2`` of a floating dtype (``2**-53`` for float64).

    Examples
    --------
    >>> unit_roundoff(np.float64) == 2.0**-53, unit_roundoff(np.float32) == 2.0**-24
    (True, True)
    """
    return float(np.finfo(np.dtype(dtype)).eps) / 2.0


def gamma(m: int, u: float) -> float:
    """Higham's ``γ_m = m u / (1 − m u)``: the relative error bound of an ``m``-term sum.

    Raises
    ------
    ParameterValueError
        When ``m u >= 1`` (no bound exists).
    """
    mu = m * u
    if mu >= 1:
        raise ParameterValueError(f"rounding bound undefined: m*u = {mu} >= 1 (m = {m}, u = {u})")
    return mu / (1.0 - mu)


@lru_cache(maxsize=4096)
def _leak_upper(alpha: float, ndim: int, backend: str) -> float:
    return certified_leak_bound(alpha, ndim, backend=backend).upper


def leak_bound(alpha: float, ndim: int, *, backend: str | None = None) -> float:
    """Upper bound ``1 − θ₃(e^{−α})^{−ndim}`` on a quadratic head's off-target mass.

    Valid for any query and any rectangular key set that contains the target
    (so for every query of :func:`attn_expressivity.conv_to_mhsa`'s layers).
    The value is the upper end, rounded up to a float, of a ball-arithmetic
    enclosure (:func:`attn_expressivity.certify.certified_leak_bound`): ``θ₃ − 1``
    is summed with an explicit tail bound (through Jacobi's transformation for
    ``α < 1/2``) and ``1 − (1 + t)^{−D}`` is evaluated as
    ``Σ_j C(D, j) t^j / (1 + t)^D``, a quotient of non-negative terms, so the
    bound never collapses to 0 through cancellation: for ``α`` so large that
    the leak is below the smallest float it is the smallest positive float.

    Parameters
    ----------
    alpha : float
        Inverse width ``α`` in ``[0, ∞]``.
    ndim : int
        Number of spatial dimensions ``D >= 1``.
    backend : {"flint", "mpmath"} or None, optional
        Ball-arithmetic library (None: flint when installed, else mpmath).

    Returns
    -------
    float
        In ``[0, 1]``, never below the exact value; 1 for ``α = 0`` (uniform
        attention), 0 for ``α = ∞``.

    Raises
    ------
    ParameterValueError
        ``alpha`` negative or NaN, ``ndim < 1``, an unknown ``backend``.
    ParameterTypeError
        Non-numeric ``alpha``, non-integer ``ndim``.
    OptionalDependencyError
        ``backend="flint"`` without python-flint.

    Examples
    --------
    >>> f"{leak_bound(40.0, 2):.4e}"      # about 2·D·e^{-40}
    '1.6993e-17'
    >>> leak_bound(0.0, 2), leak_bound(float("inf"), 3)
    (1.0, 0.0)
    >>> leak_bound(800.0, 2) > 0          # below the float range, still not 0
    True
    """
    alpha = as_alpha(alpha)
    ndim = as_int(ndim, "ndim", minimum=1)
    return _leak_upper(alpha, ndim, _select_backend(backend).name)


def _real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ParameterTypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def alpha_for_tolerance(tol: float, ndim: int, *, scale: float = 1.0,
                        backend: str | None = None) -> float:
    """A certified ``α``, smallest up to :data:`ALPHA_RESOLUTION`, with ``2 · L(α) · scale <= tol``.

    ``L`` is the leak bound ``1 − θ₃(e^{−α})^{−ndim}`` and ``scale`` the data
    factor ``S = Σ_h max_k ‖x_k W^(h)‖_∞`` of the output-error bound
    (:func:`scale_factor` computes it for a kernel and an input,
    :func:`scale_from_bound` from a bound on ``‖x‖_∞``); with ``scale = 1`` the
    result is the ``α`` that makes twice the leak at most ``tol``, i.e. the
    error relative to ``S``.

    Found by bisection on ``α``; every decision is taken in ball arithmetic
    (:func:`attn_expressivity.certify.leak_term_within`): ``α`` is accepted only
    when ``2 L(α) scale <= tol`` is *proved*. The returned ``α`` is therefore
    certified, and the bisection stops when the rejected and accepted ends are
    within ``ALPHA_RESOLUTION · α / 2``, so ``α · (1 − ALPHA_RESOLUTION)`` is
    below a rejected point: since ``L`` decreases, the inequality fails there
    (or is too close to call at the working precision).

    Parameters
    ----------
    tol : float
        Target error, finite and ``> 0``.
    ndim : int
        Number of spatial dimensions.
    scale : float, optional
        Finite, ``>= 0`` (0 gives ``α = 0``).
    backend : {"flint", "mpmath"} or None, optional

    Returns
    -------
    float
        ``0.0`` when ``α = 0`` already satisfies the inequality (``2 scale <= tol``).

    Raises
    ------
    ParameterValueError
        ``tol <= 0``, infinite or NaN; ``scale < 0``, infinite or NaN; ``ndim < 1``.
    ParameterTypeError
        Non-numeric ``tol`` or ``scale``, non-integer ``ndim``.

    Examples
    --------
    >>> a = alpha_for_tolerance(1e-6, 2)
    >>> round(a, 4)
    15.895
    >>> 2 * leak_bound(a, 2) <= 1e-6 < 2 * leak_bound(a * (1 - ALPHA_RESOLUTION), 2)
    True
    """
    tol, scale = _real(tol, "tol"), _real(scale, "scale")
    if not (tol > 0) or math.isinf(tol):
        raise ParameterValueError(f"`tol` must be a finite number > 0, got {tol!r}")
    if not (scale >= 0) or math.isinf(scale):
        raise ParameterValueError(f"`scale` must be a finite number >= 0, got {scale!r}")
    ndim = as_int(ndim, "ndim", minimum=1)
    name = _select_backend(backend).name

    def ok(a: float) -> bool:
        return leak_term_within(a, ndim, scale, tol, backend=name)

    if ok(0.0):
        return 0.0
    # start from the asymptotics L ≈ 2 D e^{-α}: α ≈ log(4 D scale / tol)
    guess = max(1.0, math.log(4.0 * ndim * scale / tol))
    lo, hi = max(0.0, guess - 1.0), guess + 1.0
    if ok(lo):
        lo = 0.0
    while not ok(hi):
        lo, hi = hi, 2.0 * hi
    while hi - lo > ALPHA_RESOLUTION * hi * 0.5:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- the data factor S


def _round_up(exact: Fraction) -> float:
    """The smallest float ``>= exact``."""
    value = float(exact)
    return math.nextafter(value, math.inf) if Fraction(value) < exact else value


def _sum_up(values: Any) -> float:
    """``Σ values`` (floats), summed exactly and rounded up."""
    return _round_up(sum((Fraction(float(v)) for v in values), Fraction(0)))


def scale_factor(weight: np.ndarray, x: np.ndarray, *, groups: int = 1) -> float:
    """Upper bound on ``S = Σ_h max_k ‖x_k W_Δh‖_∞`` for a kernel and an input.

    ``k`` runs over the pixels of ``x`` (padding adds zeros or copies of
    pixels, so it does not change the maxima) and ``h`` over the kernel
    positions. ``S`` is the data factor of the leak term ``2 L S``; with
    :func:`alpha_for_tolerance` it gives the ``α`` a tolerance needs for this
    input. Computed in float64 and raised by Higham's standard-model bound
    (``|fl(x W) − x W| <= γ_{d_in} |x||W|`` plus underflow, for any summation
    order, FMA included), then summed exactly and rounded up, so the
    value is never below the exact ``S``.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    groups : int, optional

    Returns
    -------
    float

    Raises
    ------
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError
        As for :func:`attn_expressivity.conv`.

    Examples
    --------
    >>> w = np.zeros((3, 3, 1, 1)); w[1, 1] = 2.0          # a 3x3 kernel with one tap
    >>> scale_factor(w, np.full((4, 4, 1), -1.5)) >= 3.0
    True
    """
    from .config import check_image, make_config
    from .construction import head_matrices

    weight = as_float_array(weight, "weight")
    x = as_float_array(x, "x")
    cfg = make_config(weight.shape, groups=groups)
    check_image(x, cfg)
    mats = head_matrices(weight.astype(np.float64), cfg.groups)           # (H, d_in, d_out)
    tokens = x.reshape(-1, cfg.d_in).astype(np.float64)                   # (n, d_in), exact
    u, eta = 2.0**-53, 2.0**-1074
    g = gamma(cfg.d_in, u)
    d_eta = cfg.d_in * eta
    abs_tokens = np.abs(tokens)
    per_head = []
    for mat in mats:                                                      # one head at a time:
        with np.errstate(under="ignore"):                                 # O(n d_out) memory
            val = np.abs(tokens @ mat)                                    # (n, d_out)
            mag = abs_tokens @ np.abs(mat)                                # (n, d_out)
            # |x W| <= |fl(x W)| + γ|x||W| + dη and |x||W| <= fl(|x||W|)/(1 − γ) + dη
            up = val + g * (mag / (1.0 - g) + d_eta) + d_eta              # 5 roundings, all >= 0
        per_head.append(float(up.max()) * (1.0 + 8 * u))                  # covers those roundings
    return _sum_up(math.nextafter(m, math.inf) for m in per_head)


def scale_from_bound(weight: np.ndarray, x_max: float, *, groups: int = 1) -> float:
    """Upper bound on ``S`` for every input with ``‖x‖_∞ <= x_max``.

    ``‖x_k W_Δ‖_∞ = max_c |Σ_i x_{k,i} W_Δ[i, c]| <= x_max · max_c Σ_i |W_Δ[i, c]|``,
    so ``S <= x_max · Σ_h max_c ‖W_Δh[:, c]‖_1``, evaluated in exact rational
    arithmetic and rounded up once, so the value is never below the exact one.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    x_max : float
        Finite, ``>= 0``.
    groups : int, optional

    Returns
    -------
    float

    Raises
    ------
    ParameterValueError
        Negative, infinite or NaN ``x_max``; bad ``groups``.
    ParameterTypeError, ShapeError, NonFiniteError
        As for :func:`attn_expressivity.conv_to_mhsa`.

    Examples
    --------
    >>> scale_from_bound(np.ones((3, 3, 2, 4)), 0.5)      # 9 heads, column sums 2
    9.0
    """
    from .config import make_config
    from .construction import head_matrices

    weight = as_float_array(weight, "weight")
    x_max = _real(x_max, "x_max")
    if not (x_max >= 0) or math.isinf(x_max):
        raise ParameterValueError(f"`x_max` must be a finite number >= 0, got {x_max!r}")
    cfg = make_config(weight.shape, groups=groups)
    mats = np.abs(head_matrices(weight.astype(np.float64), cfg.groups))  # (H, d_in, d_out)
    total = Fraction(0)
    for m in mats:
        total += max(sum((Fraction(w) for w in m[:, c].tolist()), Fraction(0))
                     for c in range(m.shape[1]))
    return _round_up(Fraction(x_max) * total)


# --------------------------------------------------------------------------- α per float type

#: Unit roundoff of the float types in :func:`dtype_alpha_table`.
_DTYPE_U = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}


def _measured_error_numpy(layer: Any, x: np.ndarray, dtype: str) -> np.ndarray:
    """The layer with weights and input rounded to ``dtype`` and evaluated in numpy."""
    from .construction import ConvAttention

    low = ConvAttention(layer.mhsa.astype(dtype), layer.config, layer.alpha, layer.shifts,
                        layer.ranks, layer.kernel, layer.bias, layer.rank_tol)
    with np.errstate(under="ignore"):
        return low(x.astype(dtype)).astype(np.float64)


def _measured_error_torch(layer: Any, x: np.ndarray) -> np.ndarray:
    """A direct torch transcription of the layer's dense path, in bfloat16."""
    import torch

    from .encoding import quadratic_encoding

    bf = torch.bfloat16
    mhsa, cfg = layer.mhsa, layer.config
    xp = layer.pad(x.astype(np.float64))
    nd = cfg.ndim
    padded = xp.shape[xp.ndim - nd - 1:-1]
    n = math.prod(padded)
    pos = np.indices(padded).reshape(nd, n).T
    r = torch.tensor(quadratic_encoding(pos[None, :, :] - pos[:, None, :]), dtype=bf)  # (n, n, d_p)
    w_hat = torch.tensor(mhsa.w_key_hat, dtype=bf)                                     # (H, d_p, d_k)
    v = torch.tensor(mhsa.v, dtype=bf)                                                 # (H, d_k)
    coef = torch.einsum("hpk,hk->hp", w_hat, v)                                        # (H, d_p)
    scores = torch.einsum("qkp,hp->hqk", r, coef)                                      # (H, n, n)
    if math.isinf(mhsa.beta):
        top = scores.amax(dim=-1, keepdim=True)
        hit = (scores == top).to(bf)
        probs = hit / hit.sum(dim=-1, keepdim=True)
    else:
        probs = torch.softmax(scores, dim=-1)
    tokens = torch.tensor(xp.reshape(n, cfg.d_in), dtype=bf)
    values = torch.matmul(tokens, torch.tensor(mhsa.w_val, dtype=bf))                  # (H, n, d_head)
    heads = torch.matmul(probs, values).permute(1, 0, 2).reshape(n, -1)                # (n, H·d_head)
    out = heads @ torch.tensor(mhsa.w_out, dtype=bf) + torch.tensor(mhsa.b_out, dtype=bf)
    out = out.to(torch.float64).numpy().reshape(tuple(padded) + (cfg.d_out,))
    return out[layer.crop(tuple(padded)) + (slice(None),)]


def dtype_alpha_table(*, ndim: int = 2, kernel_size: int = 3, channels: int = 4,
                      image_size: int = 8, seed: int = 0, alpha_step: float = 0.25,
                      alpha_max: float = 60.0,
                      dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64"),
                      ) -> list[dict[str, Any]]:
    """The ``α`` each float type needs: from the bound, and measured in that type.

    For each type with unit roundoff ``u``:

    * ``alpha_analytic``: :func:`alpha_for_tolerance` ``(u, ndim)``, the
      certified smallest ``α`` with ``2 L(α) <= u``: the leak term, relative to
      the data factor ``S``, is below one rounding unit of the type.
    * ``alpha_measured``: on a random instance (standard-normal kernel
      ``kernel_size^ndim × channels × channels``, bias, image ``image_size^ndim``,
      ``seed``), the layer of :func:`attn_expressivity.conv_to_mhsa` with its
      weights and the input rounded to the type and evaluated in the type; the
      error ``e(α) = max |layer(x) − conv(x)| / S`` against the float64
      convolution of the rounded input. ``floor`` is ``e(∞)`` (hard attention
      in the same type: pure rounding) and ``alpha_measured`` the smallest
      ``α`` on the grid ``0, alpha_step, …, alpha_max`` from which on
      ``e(α) <= floor + u``: the leak adds at most one rounding unit.

    float16, float32 and float64 run the library's layer with numpy (the
    per-axis scores are computed in the type itself; numpy's float16 matrix
    products accumulate in float32).
    bfloat16 has no numpy type: it runs a direct torch transcription of the
    dense path (``torch.softmax``, ``torch.matmul`` on CPU, which accumulate in
    float32); without torch its row has ``None`` and a note.

    Parameters
    ----------
    ndim, kernel_size, channels, image_size, seed : int
    alpha_step, alpha_max : float
        The grid of ``α``.
    dtypes : tuple of str
        Some of ``float16``, ``bfloat16``, ``float32``, ``float64``.

    Returns
    -------
    list of dict
        Per type: ``dtype``, ``u``, ``alpha_analytic``, ``alpha_measured``,
        ``floor``, ``note``.

    Raises
    ------
    ParameterValueError
        An unknown dtype name or a non-positive grid step.

    Examples
    --------
    >>> rows = dtype_alpha_table(dtypes=("float32",), image_size=5, alpha_max=20.0)
    >>> rows[0]["alpha_measured"] <= rows[0]["alpha_analytic"]
    True
    """
    from .construction import conv_to_mhsa
    from .conv import conv

    for d in dtypes:
        if d not in _DTYPE_U:
            raise ParameterValueError(f"`dtypes` must be some of {tuple(_DTYPE_U)}, got {d!r}")
    if not (alpha_step > 0) or not (alpha_max > 0):
        raise ParameterValueError(
            f"`alpha_step` and `alpha_max` must be > 0, got {alpha_step!r} and {alpha_max!r}")
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((kernel_size,) * ndim + (channels, channels))
    bias = rng.standard_normal(channels)
    x = rng.standard_normal((image_size,) * ndim + (channels,))
    grid = [i * alpha_step for i in range(int(alpha_max / alpha_step) + 1)] + [math.inf]
    rows = []
    for name in dtypes:
        u = _DTYPE_U[name]
        row: dict[str, Any] = {"dtype": name, "u": u,
                               "alpha_analytic": alpha_for_tolerance(u, ndim),
                               "alpha_measured": None, "floor": None, "note": ""}
        if name == "bfloat16":
            try:
                import torch
            except ImportError:
                row["note"] = "torch not installed: measured column skipped"
                rows.append(row)
                continue
            xr = torch.tensor(x).to(torch.bfloat16).to(torch.float64).numpy()
            run = _measured_error_torch
            row["note"] = "torch transcription of the dense path"
        else:
            xr = x.astype(name).astype(np.float64)
            run = lambda layer, xx, name=name: _measured_error_numpy(layer, xx, name)  # noqa: E731
            row["note"] = "library layer in numpy"
        want = conv(xr, weight, bias, padding="same")
        s = scale_factor(weight, xr)
        errors = []
        for a in grid:
            layer = conv_to_mhsa(weight, bias, alpha=a)
            errors.append(float(np.abs(run(layer, xr) - want).max()) / s)
        floor = errors[-1]
        ok = [e <= floor + u for e in errors[:-1]]
        first = None
        for i in range(len(ok) - 1, -1, -1):
            if not ok[i]:
                break
            first = grid[i]
        row["alpha_measured"], row["floor"] = first, floor
        rows.append(row)
    return rows


def format_dtype_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`dtype_alpha_table` as a Markdown table.

    Examples
    --------
    >>> print(format_dtype_table([{"dtype": "float64", "u": 2**-53, "alpha_analytic": 38.1,
    ...                            "alpha_measured": 30.0, "floor": 1e-17, "note": ""}]))
    | dtype | u | alpha (bound: 2L <= u) | alpha (measured: e <= floor + u) | floor e(inf) | note |
    | --- | --- | --- | --- | --- | --- |
    | float64 | 1.110e-16 | 38.1000 | 30.00 | 1.000e-17 |  |
    """
    lines = ["| dtype | u | alpha (bound: 2L <= u) | alpha (measured: e <= floor + u) "
             "| floor e(inf) | note |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        measured = "n/a" if r["alpha_measured"] is None else f"{r['alpha_measured']:.2f}"
        floor = "n/a" if r["floor"] is None else f"{r['floor']:.3e}"
        lines.append(f"| {r['dtype']} | {r['u']:.3e} | {r['alpha_analytic']:.4f} | {measured} "
                     f"| {floor} | {r['note']} |")
    return "\n".join(lines)
