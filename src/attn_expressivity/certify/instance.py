"""A certified instance check: a layer and its convolution evaluated in ball arithmetic.

Every float this module reports is an endpoint of an enclosure rounded
*outwards* (upper ends up, lower ends down), so it is a rigorous bound on the
exact real number, not an estimate (:mod:`attn_expressivity.balls`).

The leak ``L(α, D) = 1 − θ₃(e^{−α})^{−D}`` is enclosed as in
:mod:`attn_expressivity.balls.theta`.

**Certified instance check** (:func:`certify_layer`). The float weights and
the float input are exact dyadic rationals. Evaluating the layer in ball
arithmetic from them — scores, ``exp``, softmax, ``x W_val``, ``W_out``, bias —
gives for every output element an enclosure of ``MHSA_exact(x)``, the output
of the *given float weights* in exact real arithmetic; the convolution with the
given float kernel, evaluated the same way, gives ``conv_exact(x)``. The check
proves, element by element,

.. math::
    |\\mathrm{MHSA}_{exact}(x) - \\mathrm{conv}_{exact}(x)| \\le \\varepsilon
    = \\sum_h \\left(2 L(\\alpha_h, D)\\, S_h + \\max_k \\|x_k\\|_1\\, \\tau_h\\right),

with ``S_h = max_k ‖x_k W_val^(h) W_out^(h)‖_∞`` over the keys of the padded
image, ``L(α_h, D)`` the leak of the head *as stored* (its scores read exactly
from the stored floats, the centre offset that storing ``fl(2αΔ)`` leaves
included, :func:`_leak_of`; the layer's ``α`` instead for a head whose ``α_h``
is not it) and ``τ_h`` the allowance of the split that built
the blocks (0 for the exact identity splits, the residual of the float64
factors plus their storage rounding for an SVD split: the same allowance :func:`attn_expressivity.verify`
uses, so the two agree on blocks that do not express their slice). The a-priori argument — head ``h``'s output differs from its target
value by ``Σ_{k≠t} p_k (z_k − z_t)``, at most ``2 L S_h``, and from
``x_t W_Δh`` by at most ``‖x_t‖_1 max|W_val W_out − W_Δh|`` — is why the check
should succeed; the check itself is the elementwise ball computation, which
makes the statement a proof for this instance. The float computation is a
separate matter: :func:`attn_expressivity.verify` bounds it by its rounding
term, and the certificate reports a certified upper bound on
``|layer(x) − MHSA_exact(x)|`` (``float_deviation``) to compare it with.
"""

from __future__ import annotations

import itertools
import math
import operator
import time
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from .._validation import as_float_array, as_int
from ..balls.backends import DEFAULT_PRECISION, Balls, select_backend
from ..balls.theta import leak_ball
from ..convolution.config import check_image
from ..convolution.slices import kernel_slices
from ..errors import (
    CertificationSizeError,
    ParameterTypeError,
    ParameterValueError,
    UnsupportedConfigurationError,
)
from ..theorem.construction import ConvAttention
from ..theorem.factorisation import factorisation_allowance
from ..theorem.heads import charged_alpha, head_issues, intended_shifts, stored_heads
from .report import CertificationReport

__all__ = ["MAX_CERTIFY_WORK", "certify_layer", "certify_work"]

#: Largest instance :func:`certify_layer` accepts, in ball operations
#: ``batch · n_heads · n_queries · n_keys · (d_head + 1)``: an 8×8 image with a
#: 3×3 kernel and 4 channels (``d_head = 4``, 100 padded keys, 64 queries)
#: needs 288,000; both back-ends finish that in seconds.
MAX_CERTIFY_WORK = 600_000

_MAX_PRECISION = 512


def _allowance(layer: Any, h: int) -> float:
    """The allowance of head ``h``'s split, the same one :func:`attn_expressivity.verify` uses."""
    if layer.allowances is not None:
        return float(layer.allowances[h])
    dh = layer.mhsa.d_head
    mat = kernel_slices(layer.kernel, layer.config.groups)[int(layer.kernel_indices[h])]
    return factorisation_allowance(mat, layer.mhsa.w_val[h], layer.mhsa.w_out[h * dh:(h + 1) * dh],
                                   layer.rank_tol)


def _layer_geometry(layer: Any, x: np.ndarray) -> dict[str, Any]:
    cfg, mhsa = layer.config, layer.mhsa
    nd = cfg.ndim
    xp = layer.pad(x)
    padded = tuple(xp.shape[xp.ndim - nd - 1:-1])
    window = layer.crop(padded)
    q_axes = [range(sl.start, sl.stop, sl.step) for sl in window]
    batch = tuple(xp.shape[: xp.ndim - nd - 1])
    n_k, n_q = math.prod(padded), math.prod(len(r) for r in q_axes)
    work = math.prod(batch) * mhsa.n_heads * n_q * n_k * (mhsa.d_head + 1)
    return {"xp": xp, "padded": padded, "q_axes": q_axes, "batch": batch, "n_k": n_k,
            "n_q": n_q, "work": work}


def certify_work(layer: Any, x: np.ndarray) -> int:
    """The size of a certified check, in ball operations (see :data:`MAX_CERTIFY_WORK`).

    Parameters
    ----------
    layer : ConvAttention
    x : ndarray, shape ``(*batch, *spatial, d_in)``

    Returns
    -------
    int
        ``batch · n_heads · n_queries · n_keys · (d_head + 1)`` over the padded image.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> layer = conv_to_mhsa(np.ones((3, 3, 4, 4)), alpha=20.0, d_head=4)
    >>> certify_work(layer, np.ones((8, 8, 4)))
    288000
    """
    x = as_float_array(x, "x")
    check_image(x, layer.config)
    return _layer_geometry(layer, x)["work"]


def _head_forms(layer: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """The heads' scores exactly as stored, and the heads that are not Lemma 2's.

    The score of offset ``δ`` is ``c_0 ‖δ‖² + Σ_i c_i δ_i`` with ``c = β Ŵ_key v``
    read exactly from the stored floats (:func:`attn_expressivity.theorem.heads.stored_heads`):
    ``−α_h ‖δ − μ_h‖² + const``. Storing ``v = −α(1, −2Δ)`` in floating point
    rounds ``2αΔ``, so ``μ_h`` differs from ``Δ_h`` by that rounding; the leak
    bound is taken for the stored ``α_h`` and ``μ_h`` (:func:`_leak_of`). A head
    whose centre is further from ``Δ_h`` than the storage can explain is not
    Lemma 2's (:func:`attn_expressivity.theorem.heads.head_issues`).
    """
    heads = stored_heads(layer)
    issues = [dict(e, reason=f"{e['reason']}; the leak bound does not apply") for e in head_issues(layer)]
    return heads, issues


def _leak_of(be: Balls, alpha: Fraction, offset: tuple[Fraction, ...], ndim: int, prec: int) -> Any:
    """A ball above the off-target mass of a head ``−α ‖δ − Δ − ε‖²`` (``ε`` the stored offset).

    An off-target key ``z ≠ 0`` (relative to the target) weighs
    ``e^{−α‖z‖² + 2α z·ε} <= e^{−α(1 − τ)‖z‖²} e^{α‖ε‖²/τ}`` times the target's, for
    any ``τ ∈ (0, 1)``; with ``τ = ‖ε‖`` the mass off the target is at most
    ``e^{α‖ε‖} L(α (1 − ‖ε‖), D)`` (``x / (1 + x)`` increases, and ``c x/(1 + c x) <=
    c x / (1 + x)`` for ``c >= 1``); ``L(α, D)`` when ``ε = 0``, 1 when ``α <= 0``.
    """
    if alpha <= 0:
        return be.num(1)
    norm2 = sum((e * e for e in offset), Fraction(0))
    if norm2 == 0:
        a = float(alpha)
        if Fraction(a) > alpha:                           # L decreases in α: round α down
            a = math.nextafter(a, 0.0)
        return leak_ball(be, a, ndim, prec)
    eps = math.nextafter(math.sqrt(float(norm2)), math.inf)    # >= ‖ε‖
    if eps >= 1:
        return be.num(1)
    a_low = math.nextafter(float(alpha * (1 - Fraction(eps))), 0.0)
    grow = be.exp(be.num(float(alpha)) * be.num(eps) * be.num(1 + 2.0**-50))
    ball = grow * leak_ball(be, a_low, ndim, prec)
    return ball if be.upper(ball) < 1 else be.num(1)


def certify_layer(layer: Any, x: np.ndarray, *, backend: str | None = None,
                  factorisation_tol: float | None = None,
                  prec: int = DEFAULT_PRECISION) -> CertificationReport:
    """Prove ``|MHSA_exact(x) − conv_exact(x)| <= ε`` element by element.

    ``layer`` is a :class:`attn_expressivity.ConvAttention` (from
    :func:`attn_expressivity.conv_to_mhsa`, possibly with edited weights) and
    ``conv_exact`` the convolution with ``layer.kernel`` and ``layer.bias``.
    The attention layer (pad → scores → exp → softmax → values → ``W_out`` →
    bias → crop) and the convolution (pad → multiply-add over the kernel window
    → bias) are both evaluated in ball arithmetic from the exact float weights
    and input; ``ε`` is the a-priori bound of the module docstring. When the
    enclosures at ``prec`` bits cannot decide an element, the precision is
    doubled (up to 512 bits). ``holds`` needs every element certified, every
    head Lemma 2's up to the rounding of its stored vector and every residual
    within its allowance.

    What is proved is a statement about exact real arithmetic with the given
    float weights; the floating-point evaluation of the same layer is covered
    by :func:`attn_expressivity.verify`'s rounding term and measured here as
    ``float_deviation`` (itself a certified upper bound).

    Parameters
    ----------
    layer : ConvAttention
        Content terms zero, quadratic encoding (as built by ``conv_to_mhsa``).
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    backend : {"flint", "mpmath"} or None, optional
        None: flint when installed, else mpmath.
    factorisation_tol : float, optional
        ``τ_h`` for every head; default the allowance of the head's split
        (:attr:`~attn_expressivity.ConvAttention.allowances`, or
        :func:`~attn_expressivity.theorem.factorisation.factorisation_allowance`
        for blocks built elsewhere).
    prec : int, optional
        Initial working precision in bits (``>= 53``).

    Returns
    -------
    CertificationReport

    Raises
    ------
    CertificationSizeError
        When :func:`certify_work` exceeds :data:`MAX_CERTIFY_WORK`.
    UnsupportedConfigurationError
        A layer with content terms, a non-quadratic encoding or a head shift that
        is not an integer.
    ParameterTypeError, ParameterValueError, ShapeError, NonFiniteError, OptionalDependencyError
        Bad arguments, an input that does not fit the layer, a missing back-end.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> rng = np.random.default_rng(0)
    >>> layer = conv_to_mhsa(rng.standard_normal((3, 3, 2, 2)), alpha=30.0)
    >>> report = certify_layer(layer, rng.standard_normal((5, 5, 2)), backend="mpmath")
    >>> report.holds, report.n_certified, report.max_abs_difference <= report.epsilon
    (True, 50, True)
    """
    t0 = time.perf_counter()
    if not isinstance(layer, ConvAttention):
        raise ParameterTypeError(
            f"`layer` must be a ConvAttention (from conv_to_mhsa), got {type(layer).__name__}"
        )
    be = select_backend(backend)
    prec = as_int(prec, "prec", minimum=53)
    if factorisation_tol is not None:
        if isinstance(factorisation_tol, bool) or not isinstance(factorisation_tol, (int, float)):
            raise ParameterTypeError(
                f"`factorisation_tol` must be a number >= 0 or None, got {type(factorisation_tol).__name__}"
            )
        if not (float(factorisation_tol) >= 0) or math.isinf(factorisation_tol):
            raise ParameterValueError(
                f"`factorisation_tol` must be a finite number >= 0, got {factorisation_tol!r}"
            )
    x = as_float_array(x, "x")
    cfg, mhsa = layer.config, layer.mhsa
    check_image(x, cfg)
    if not (isinstance(mhsa.encoding, str) and mhsa.encoding == "quadratic"):
        raise UnsupportedConfigurationError(
            "certify_layer needs the quadratic encoding r_δ = (|δ|², δ), got a custom encoding"
        )
    if np.any(mhsa.w_qry) or np.any(mhsa.w_key):
        raise UnsupportedConfigurationError(
            "certify_layer needs W_qry = W_key = 0 (no content terms), as conv_to_mhsa builds"
        )
    shifts = np.asarray(layer.shifts)
    if shifts.dtype.kind == "f" and not np.array_equal(shifts, np.round(shifts)):
        h = int(np.argmax(np.any(shifts != np.round(shifts), axis=1)))
        raise UnsupportedConfigurationError(
            "certify_layer needs integer head shifts (its leak argument puts each head on one "
            f"pixel); head {h} is centred on {tuple(float(c) for c in shifts[h])}"
        )
    geo = _layer_geometry(layer, x)
    if geo["work"] > MAX_CERTIFY_WORK:
        raise CertificationSizeError(
            f"certify=True is limited to {MAX_CERTIFY_WORK:,} ball operations "
            f"(batch x heads x queries x keys x (d_head + 1); an 8x8 image with a 3x3 kernel and "
            f"4 channels needs 288,000), got {geo['work']:,} (batch {math.prod(geo['batch'])}, "
            f"{mhsa.n_heads} heads, {geo['n_q']} queries, {geo['n_k']} keys, d_head {mhsa.d_head}); "
            f"certify a crop of the image or a smaller kernel"
        )
    heads, issues = _head_forms(layer)
    y_float = layer(x)
    mats = kernel_slices(layer.kernel, cfg.groups)                         # (H, d_in, d_out)
    while True:
        with be.precision(prec):
            result = _certify_pass(be, layer, geo, heads, issues, mats, y_float,
                                   factorisation_tol, prec)
        if result["undecided"] == 0 or prec >= _MAX_PRECISION:
            break
        prec *= 2
    result.pop("undecided")
    return CertificationReport(**result, backend=be.name, precision=prec,
                               seconds=time.perf_counter() - t0)



class _Exact(NamedTuple):
    """The layer's and the convolution's float data as exact balls."""

    w_val: list      # (H, d_in, d_head)
    w_out: list      # (H, d_head, d_out)
    w_conv: list     # (H, d_in, d_out), the kernel slices
    b_out: list      # (d_out,)
    b_conv: list     # (d_out,)
    xs: list         # (B, n_keys, d_in), the padded input


class _Maps(NamedTuple):
    """Index maps of the padded image (keys in raster order, queries the kept window)."""

    offsets: np.ndarray        # (n_off, D): every offset δ = k − q
    off_index: list            # (n_q, n_k): index into `offsets` of k − q
    q_flat: list               # (n_q,): token index of each query
    tap: list                  # (H, n_q): token read by kernel index h for output q


def _exact_inputs(be: Balls, layer: ConvAttention, geo: dict[str, Any], mats: np.ndarray) -> _Exact:
    mhsa, cfg = layer.mhsa, layer.config
    num, dh = be.num, mhsa.d_head

    def balls(arr: np.ndarray) -> list:
        return [balls(a) for a in arr] if arr.ndim > 1 else [num(float(a)) for a in arr]

    tokens = geo["xp"].reshape(-1, geo["n_k"], cfg.d_in)                 # (B, n_k, d_in)
    b_conv = [num(0)] * cfg.d_out if layer.bias is None else balls(layer.bias)
    return _Exact(balls(mhsa.w_val), balls(mhsa.w_out.reshape(mhsa.n_heads, dh, cfg.d_out)),
                  balls(mats), balls(mhsa.b_out), b_conv, balls(tokens))


def _index_maps(layer: ConvAttention, geo: dict[str, Any]) -> _Maps:
    cfg = layer.config
    nd, padded, q_axes, n_k = cfg.ndim, geo["padded"], geo["q_axes"], geo["n_k"]
    k_pos = np.indices(padded).reshape(nd, n_k).T                            # (n_k, D)
    q_pos = np.array(list(itertools.product(*q_axes)), dtype=np.int64).reshape(-1, nd)  # (n_q, D)
    box = tuple(2 * p - 1 for p in padded)                                   # offsets δ = k − q
    rel = k_pos[None, :, :] - q_pos[:, None, :] + (np.array(padded) - 1)    # (n_q, n_k, D), >= 0
    off_index = np.ravel_multi_index(tuple(np.moveaxis(rel, -1, 0)), box).tolist()
    offsets = np.indices(box).reshape(nd, -1).T - (np.array(padded) - 1)    # (n_off, D)
    q_flat = np.ravel_multi_index(tuple(q_pos.T), padded).tolist()          # query token index
    # the convolution side reads its taps from the configuration alone, never from the
    # layer's shifts: output o, kernel index i (raster order, the order of `mats`) reads
    # the padded pixel o·stride + i·dilation
    outs = np.array(list(itertools.product(*[range(len(r)) for r in q_axes])),
                    dtype=np.int64).reshape(-1, nd)                          # (n_q, D)
    kernel_idx = np.array(list(itertools.product(*[range(k) for k in cfg.kernel_size])),
                          dtype=np.int64).reshape(-1, nd)                    # (H, D)
    tap = [np.ravel_multi_index(tuple((outs * np.array(cfg.stride)
                                       + i * np.array(cfg.dilation)).T), padded).tolist()
           for i in kernel_idx]                                              # conv tap per kernel index
    return _Maps(offsets, off_index, q_flat, tap)


def _head_weights(be: Balls, layer: ConvAttention, heads: list[Any], issues: list[dict[str, Any]],
                  offsets: np.ndarray, prec: int) -> tuple[list[Any], list[Any]]:
    """Per head, ``exp(score(δ) − score(Δ_h))`` for every offset, and the leak ball.

    The scores are the stored ones, exactly; ``Δ_h`` is the shift of the kernel
    slice the head carries. A head that is not Lemma 2's is allowed only the
    leak of a Lemma 2 head with its ``α`` (its own centre plays no part), and a
    head whose stored ``α_h`` is not the layer's ``α`` only the leak at the layer's
    ``α`` (:func:`attn_expressivity.theorem.heads.charged_alpha`), so its
    deviation shows in the elements.
    """
    num, zero, nd = be.num, be.num(0), layer.config.ndim
    shifts = intended_shifts(layer)
    named = {e["head"] for e in issues}
    hard = not math.isfinite(layer.mhsa.beta)
    exp_cache: dict[Fraction, Any] = {}
    weights: list[Any] = []                                                  # (H, n_off) balls
    leaks: list[Any] = []
    for h, head in enumerate(heads):
        c = head.coefficients
        shift = [int(v) for v in shifts[h]]
        scores = [c[0] * sum(di * di for di in d) + sum(ci * di for ci, di in zip(c[1:], d))
                  for d in offsets.tolist()]
        if hard:
            # β = ∞: uniform on the argmax set of the exact scores (one-hot on Δ_h for Lemma 2's heads)
            top = max(scores)
            hits = [sc == top for sc in scores]
            share = num(1) / num(sum(hits))
            weights.append([share if hit else zero for hit in hits])
            leaks.append(zero)
            continue
        target = c[0] * sum(v * v for v in shift) + sum(ci * v for ci, v in zip(c[1:], shift))
        row = []
        for sc in scores:
            d = sc - target
            if d not in exp_cache:
                exp_cache[d] = num(1) if d == 0 else be.exp(num(d))
            row.append(exp_cache[d])
        weights.append(row)
        offset = tuple(Fraction(0) for _ in shift) if h in named or None in named else head.offset
        leaks.append(_leak_of(be, charged_alpha(layer, head), offset, nd, prec))
    return weights, leaks


def _epsilon(be: Balls, layer: ConvAttention, exact: _Exact, leaks: list[Any],
             tau_fixed: float | None) -> dict[str, Any]:
    """Per head ``ε_h = 2 L_h S_h + F_h`` (None where the leak bound does not apply)."""
    mhsa, cfg = layer.mhsa, layer.config
    num, zero = be.num, be.num(0)
    H, dh, d_in, d_out = mhsa.n_heads, mhsa.d_head, cfg.d_in, cfg.d_out
    head_eps: list[Any] = []
    residuals, issues, scale_total, fact_total, leak_max = [], [], 0.0, 0.0, 0.0
    x_l1 = max(be.upper(sum((abs(a) for a in tok), zero)) for xb in exact.xs for tok in xb)
    for h in range(H):
        w_conv = exact.w_conv[int(layer.kernel_indices[h])]                           # head h's slice
        m_h = [[sum((exact.w_val[h][i][j] * exact.w_out[h][j][c] for j in range(dh)), zero)
                for c in range(d_out)] for i in range(d_in)]                          # (d_in, d_out)
        resid = max(be.upper(abs(m_h[i][c] - w_conv[i][c]))
                    for i in range(d_in) for c in range(d_out))
        residuals.append(resid)
        tau = num(tau_fixed if tau_fixed is not None else _allowance(layer, h))
        lower = max(be.lower(abs(m_h[i][c] - w_conv[i][c])) for i in range(d_in) for c in range(d_out))
        if lower > be.upper(tau):                     # certainly above the split's allowance
            issues.append({"head": h, "reason": (
                f"factorisation residual max|W_val W_out - W_delta| >= {lower:.3e} exceeds the "
                f"allowance tau = {be.upper(tau):.3e}")})
        s_h = max(be.upper(abs(sum((tok[i] * m_h[i][c] for i in range(d_in)), zero)))
                  for xb in exact.xs for tok in xb for c in range(d_out))
        scale_total += s_h
        fact = num(x_l1) * tau
        fact_total += be.upper(fact)
        leak_max = max(leak_max, be.upper(leaks[h]))
        head_eps.append(2 * leaks[h] * num(s_h) + fact)
    return {"head_eps": head_eps, "residuals": residuals, "issues": issues,
            "scale": scale_total, "factorisation_allowance": fact_total, "leak": leak_max}


def _certify_pass(be: Balls, layer: ConvAttention, geo: dict[str, Any], heads: list[Any],
                  form_issues: list[dict[str, Any]], mats: np.ndarray, y_float: np.ndarray,
                  tau_fixed: float | None, prec: int) -> dict[str, Any]:
    """One evaluation at the current precision (see :func:`certify_layer`)."""
    exact = _exact_inputs(be, layer, geo, mats)
    maps = _index_maps(layer, geo)
    weights, leaks = _head_weights(be, layer, heads, form_issues, maps.offsets, prec)
    eps = _epsilon(be, layer, exact, leaks, tau_fixed)
    n_elem = len(exact.xs) * len(maps.q_flat) * layer.config.d_out
    issues = list(form_issues) + eps["issues"]
    result = {"leak": eps["leak"], "scale": eps["scale"],
              "factorisation_allowance": eps["factorisation_allowance"],
              "head_issues": issues, "residuals": eps["residuals"], "n_elements": n_elem}
    epsilon = be.upper(sum(eps["head_eps"], be.num(0)))
    checked = _check_elements(be, layer, geo, exact, maps, weights,
                              [be.num(be.upper(e)) for e in eps["head_eps"]], epsilon, y_float)
    # every element certified and every head Lemma 2's with blocks that express its slice
    return dict(result, **checked, epsilon=epsilon,
                holds=checked["n_certified"] == n_elem and not issues)


def _check_elements(be: Balls, layer: ConvAttention, geo: dict[str, Any], exact: _Exact,
                    maps: _Maps, weights: list[Any], eps_heads: list[Any], epsilon: float,
                    y_float: np.ndarray) -> dict[str, Any]:
    """Prove ``|MHSA_exact − conv_exact| <= epsilon`` element by element, recording failures."""
    mhsa, cfg = layer.mhsa, layer.config
    zero, eps_exact = be.num(0), be.num(epsilon)                         # prove against this float
    H, d_out, n_q = mhsa.n_heads, cfg.d_out, len(maps.q_flat)
    failures: list[dict[str, Any]] = []
    n_cert = undecided = 0
    max_diff = float_dev = 0.0
    y_flat = y_float.reshape(-1, n_q, d_out)
    for b, xb in enumerate(exact.xs):                                    # xb: (n_k, d_in)
        head_out = [_head_outputs(be, exact, maps, weights[h], h, xb) for h in range(H)]
        for qi in range(n_q):
            for c in range(d_out):
                attn = exact.b_out[c] + sum((head_out[h][qi][c] for h in range(H)), zero)
                # the convolution sums over every kernel index, whatever heads the layer has
                conv_h = [sum((xb[maps.tap[k][qi]][i] * exact.w_conv[k][i][c]
                               for i in range(cfg.d_in)), zero) for k in range(len(maps.tap))]
                diff = attn - (exact.b_conv[c] + sum(conv_h, zero))
                max_diff = max(max_diff, be.upper(abs(diff)))
                float_dev = max(float_dev, be.upper(abs(be.num(float(y_flat[b, qi, c])) - attn)))
                if be.nonneg(eps_exact - diff) and be.nonneg(eps_exact + diff):
                    n_cert += 1
                    continue
                violated = be.negative(eps_exact - diff) or be.negative(eps_exact + diff)
                undecided += not violated
                if len(failures) < 10:
                    failures.append(_failure(be, layer, geo, b, qi, c, diff, violated, epsilon,
                                             [head_out[h][qi][c] - conv_h[int(layer.kernel_indices[h])]
                                              for h in range(H)],
                                             eps_heads))
    return {"failures": failures, "n_certified": n_cert, "undecided": undecided,
            "max_abs_difference": max_diff, "float_deviation": float_dev}


def _head_outputs(be: Balls, exact: _Exact, maps: _Maps, weights: list[Any], h: int,
                  xb: list) -> list[list[Any]]:
    """Head ``h`` on one image: ``softmax(scores) x W_val^(h) W_out^(h)``, shape ``(n_q, d_out)``."""
    zero, mul = be.num(0), operator.mul
    d_in, dh, d_out = len(exact.w_val[h]), len(exact.w_out[h]), len(exact.b_out)
    # values V = x W_val, as columns (dh lists of n_k balls)
    cols = [[sum((tok[i] * exact.w_val[h][i][j] for i in range(d_in)), zero) for tok in xb]
            for j in range(dh)]
    per_q = []
    for qi in range(len(maps.q_flat)):
        e = [weights[o] for o in maps.off_index[qi]]                     # exp(score − score_t), (n_k,)
        z = sum(e, zero)                                                 # softmax denominator
        head = [sum(map(mul, e, col), zero) / z for col in cols]         # (dh,)
        per_q.append([sum((head[j] * exact.w_out[h][j][c] for j in range(dh)), zero)
                      for c in range(d_out)])
    return per_q


def _failure(be: Balls, layer: ConvAttention, geo: dict[str, Any], b: int, qi: int, c: int,
             diff: Any, violated: bool, epsilon: float, per_head: list[Any],
             eps_heads: list[Any]) -> dict[str, Any]:
    """The record of an uncertified element, with the heads whose own share is exceeded."""
    heads = []
    for h, a_h in enumerate(per_head):
        if be.negative(eps_heads[h] - a_h) or be.negative(eps_heads[h] + a_h):
            heads.append({"head": h, "shift": [int(s) for s in layer.shifts[h]],
                          "discrepancy": [be.lower(a_h), be.upper(a_h)],
                          "allowance": be.upper(eps_heads[h])})
    pixel = np.unravel_index(qi, tuple(len(r) for r in geo["q_axes"]))
    batch_idx = np.unravel_index(b, geo["batch"]) if geo["batch"] else ()
    return {"element": [int(i) for i in (*batch_idx, *pixel, c)],
            "status": "violated" if violated else "undecided",
            "difference": [be.lower(diff), be.upper(diff)], "epsilon": epsilon, "heads": heads}
