"""The attention side: encodings, softmax, the layer and its execution paths.

* :mod:`~attn_expressivity.attention.encoding`: relative positional encodings
  ``r_δ`` and Lemma 2's head vectors;
* :mod:`~attn_expressivity.attention.softmax`: the overflow-free row softmax;
* :mod:`~attn_expressivity.attention.weights`: a layer's weights and what they imply;
* :mod:`~attn_expressivity.attention.layer`: :class:`MultiHeadSelfAttention`,
  those weights with the choice of a path and the call;
* :mod:`~attn_expressivity.attention.axes`: per-axis score tables of separable heads, banded;
* :mod:`~attn_expressivity.attention.bands`: contractions along one axis with such a table;
* :mod:`~attn_expressivity.attention.dense`, :mod:`~attn_expressivity.attention.positional`,
  :mod:`~attn_expressivity.attention.separable`: the three exact execution paths;
* :mod:`~attn_expressivity.attention.traced`: the separable and dense positional paths
  with a running bound on their rounding error.

Nothing here knows about convolutions: the attention side imports neither the
reference convolution nor the construction of Theorem 1.
"""

from .encoding import anisotropic_encoding, quadratic_encoding, quadratic_head_vectors
from .layer import DEFAULT_MEMORY_BUDGET, PATHS, MultiHeadSelfAttention
from .softmax import stable_softmax

__all__ = ["DEFAULT_MEMORY_BUDGET", "PATHS", "MultiHeadSelfAttention", "anisotropic_encoding",
           "quadratic_encoding", "quadratic_head_vectors", "stable_softmax"]
