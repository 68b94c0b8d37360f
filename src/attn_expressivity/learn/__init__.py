"""The paper's empirical claim at small scale: attention trained on images learns convolution-like heads.

Needs the ``learn`` extra (``torch==2.13.0``, scikit-image, tqdm, matplotlib);
``import attn_expressivity.learn`` itself imports none of them.

* :mod:`~attn_expressivity.learn.models`: the trainable layers (quadratic
  encoding with learned ``Δ_h``, ``α_h``; learned relative encoding, with or
  without content) and the network around them;
* :mod:`~attn_expressivity.learn.teacher`: a layer learns a fixed convolution
  (criteria 1–3);
* :mod:`~attn_expressivity.learn.data` and :mod:`~attn_expressivity.learn.classify`:
  texture classification, Table 1 at this scale (criterion 4);
* :mod:`~attn_expressivity.learn.criteria`: the criteria and their thresholds;
* :mod:`~attn_expressivity.learn.runner`: every run on five seeds, cached;
  :mod:`~attn_expressivity.learn.figures` and :mod:`~attn_expressivity.learn.report`:
  the figures and the results tables.

Every run is deterministic: one thread (``torch.set_num_threads(1)``) and one
seeded ``torch.Generator`` for every random draw.
"""

__all__: list[str] = []
