"""attn-expressivity: a proof companion to Cordonnier, Loukas & Jaggi (ICLR 2020).

A multi-head self-attention layer with ``prod(kernel_size)`` heads and the
quadratic relative positional encoding expresses any convolution (Theorem 1).
This package builds that layer, runs it against an independent reference
convolution, bounds the difference, and (in :mod:`attn_expressivity.symbolic`)
proves the identities behind it.

Importing the package loads numpy only; sympy, torch and matplotlib are
imported by the features that need them.
"""

from __future__ import annotations

from typing import Any

from .analysis.analyse import analyse_attention
from .analysis.report import AttentionReport
from .attention.encoding import quadratic_encoding, quadratic_head_vectors
from .attention.layer import MultiHeadSelfAttention
from .balls.theta import Enclosure, certified_leak_bound
from .bounds.dtypes import dtype_alpha_table
from .bounds.leak import alpha_for_tolerance, leak_bound
from .bounds.scale import scale_factor, scale_from_bound
from .certify.instance import certify_layer
from .certify.report import CertificationReport
from .convolution.reference import conv
from .convolution.shifts import shift_set
from .errors import (
    AttnExpressivityError,
    CertificationSizeError,
    HeadDimensionError,
    InputMismatchError,
    NonFiniteError,
    NotSeparableError,
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    UnsupportedConfigurationError,
)
from .theorem.construction import ConvAttention, centres_to_mhsa, conv_to_mhsa
from .theorem.lower_bound import heads_lower_bound, min_heads
from .verify import VerifyReport, verify

__version__ = "0.1.0"

__all__ = [
    "AttentionReport",
    "AttnExpressivityError",
    "CertificationReport",
    "CertificationSizeError",
    "ConvAttention",
    "Enclosure",
    "HeadDimensionError",
    "InputMismatchError",
    "MultiHeadSelfAttention",
    "NonFiniteError",
    "NotSeparableError",
    "OptionalDependencyError",
    "ParameterTypeError",
    "ParameterValueError",
    "ShapeError",
    "UnsupportedConfigurationError",
    "VerifyReport",
    "alpha_for_tolerance",
    "analyse_attention",
    "certified_leak_bound",
    "centres_to_mhsa",
    "certify_layer",
    "conv",
    "conv_to_mhsa",
    "convert_model",
    "dtype_alpha_table",
    "from_torch",
    "heads_lower_bound",
    "leak_bound",
    "min_heads",
    "quadratic_encoding",
    "quadratic_head_vectors",
    "scale_factor",
    "scale_from_bound",
    "shift_set",
    "to_torch",
    "verify",
    "verify_model",
]

_LAZY = {"from_torch": "interop.torch", "to_torch": "interop.torch",
         "convert_model": "interop.convert", "verify_model": "interop.verify_model"}


def __getattr__(name: str) -> Any:
    """Import the optional-dependency entry points (torch interop) on first use."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
