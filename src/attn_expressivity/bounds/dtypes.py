"""The ``α`` each floating-point type needs: from the bound and measured in that type."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..attention.encoding import quadratic_encoding
from ..convolution.reference import conv
from ..errors import ParameterValueError
from ..theorem.construction import ConvAttention, conv_to_mhsa
from .leak import alpha_for_tolerance
from .scale import scale_factor

__all__ = ["dtype_alpha_table", "format_dtype_table"]

#: Unit roundoff of the float types in :func:`dtype_alpha_table`.
_DTYPE_U = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}


def _measured_error_numpy(layer: Any, x: np.ndarray, dtype: str) -> np.ndarray:
    """The layer with weights and input rounded to ``dtype`` and evaluated in numpy."""
    low = ConvAttention(layer.mhsa.astype(dtype), layer.config, layer.alpha, layer.shifts,
                        layer.ranks, layer.kernel, layer.bias, layer.rank_tol,
                        layer.kernel_indices)
    with np.errstate(under="ignore"):
        return low(x.astype(dtype)).astype(np.float64)


def _measured_error_torch(layer: Any, x: np.ndarray) -> np.ndarray:
    """A direct torch transcription of the layer's dense path, in bfloat16."""
    import torch

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
