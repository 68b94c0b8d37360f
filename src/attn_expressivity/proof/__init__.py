"""The symbolic engine (sympy): derivations and machine-checked proof obligations.

* :mod:`~attn_expressivity.proof.derive`: solve for the head vector ``v`` by
  matching coefficients (Lemma 2, the appendix's anisotropic encoding, the
  failing linear encoding);
* :mod:`~attn_expressivity.proof.obligation`: an obligation, its checkers and
  the report of a run (*proved* for all values of the symbols, or *checked*
  on named instances);
* :mod:`~attn_expressivity.proof.numeric`: the package's numbers checked
  against the proved formulas at generic points;
* :mod:`~attn_expressivity.proof.catalogue`: every step of the paper's argument
  as an obligation, with the Coq theorem of its general statement;
* :mod:`~attn_expressivity.proof.prove`: discharge them;
* :mod:`~attn_expressivity.proof.documents`: the derivation document;
* :mod:`~attn_expressivity.proof.coq`: the audit of the Coq development
  (``proofs/coq/check``), which proves the general statements.

The modules import one another in that order, without a cycle.
:mod:`attn_expressivity.symbolic` is the public face of this package.
Importing :mod:`attn_expressivity` does not load sympy; importing this package does.
"""
