"""Bridges to other frameworks, each behind an optional dependency.

:mod:`attn_expressivity.interop.torch` converts PyTorch convolutions into
:class:`~attn_expressivity.ConvAttention` layers and those layers into
``torch.nn.Module`` objects. Importing this package imports nothing optional;
the submodule imports torch.
"""

__all__: list[str] = []
