"""Symbolic derivations and machine-checked proof obligations (sympy).

The public face of :mod:`attn_expressivity.proof`; importing this module loads
sympy, ``import attn_expressivity`` does not. Two things live here:

* **the derivation engine** (:mod:`attn_expressivity.proof.derive`):
  :func:`derive_head_vector` solves for a head vector ``v`` by matching
  coefficients, and :func:`derive_isotropic` (Lemma 2), :func:`derive_anisotropic`
  (the appendix's learned covariance) and :func:`derive_linear` (the failure
  case) build the paper's three targets;
* **proof obligations** (:mod:`attn_expressivity.proof.obligation`): named
  statements with the method that discharges each; :func:`paper_obligations`
  lists every step of the paper's argument and :func:`prove` discharges them
  (each is *proved* for all values of its symbols or *checked* on named
  instances, and names the Coq theorem of the general statement);
  :func:`derivation_document` writes them all up;
* **the Coq development's audit** (:mod:`attn_expressivity.proof.coq`):
  :func:`coq_check` runs ``proofs/coq/check``.
"""

from .proof.coq import CoqReport, CoqTheorem, coq_check, find_coq_development
from .proof.derive import (
    MAX_NDIM,
    Derivation,
    alpha_symbol,
    anisotropic_basis,
    centre_symbols,
    derive_anisotropic,
    derive_head_vector,
    derive_isotropic,
    derive_linear,
    format_derivation,
    offset_symbols,
    precision_symbols,
)
from .proof.documents import derivation_document
from .proof.obligation import (
    Obligation,
    ProofReport,
    exhaustive_obligation,
    identity_obligation,
    inequality_obligation,
    limit_obligation,
)
from .proof.prove import paper_obligations, prove

__all__ = [
    "CoqReport",
    "CoqTheorem",
    "MAX_NDIM",
    "Derivation",
    "Obligation",
    "ProofReport",
    "alpha_symbol",
    "centre_symbols",
    "offset_symbols",
    "precision_symbols",
    "anisotropic_basis",
    "derive_head_vector",
    "derive_isotropic",
    "derive_anisotropic",
    "derive_linear",
    "format_derivation",
    "identity_obligation",
    "inequality_obligation",
    "limit_obligation",
    "exhaustive_obligation",
    "paper_obligations",
    "prove",
    "derivation_document",
    "coq_check",
    "find_coq_development",
]
