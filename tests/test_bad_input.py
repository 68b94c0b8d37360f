"""Every public function and CLI subcommand answers each kind of bad input clearly.

The rows below are the data of ``docs/bad_inputs.md``: each names the callable,
the kind of bad input, the call (Python code evaluated here, or a command
line), the exception (or exit status) and a pattern its message must match.
``test_docs_table_matches_rows`` checks that the table in the docs is exactly
the rendering of these rows, including the message each call really gives;
regenerate it with ``python tests/test_bad_input.py``.
"""

import math
import pathlib
import sys

import numpy as np
import pytest

import attn_expressivity as ae
from attn_expressivity import cli
from attn_expressivity.convolution.instances import random_instance
from attn_expressivity.theorem.border import border_effect

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
BEGIN, END = "<!-- begin table: generated from tests/test_bad_input.py -->", "<!-- end table -->"


def W(*shape):
    """A float64 kernel of ones, ``(*kernel_size, d_in // groups, d_out)``."""
    return np.ones(shape)


def X(*shape):
    """A float64 image of ones, ``(*spatial, d_in)``."""
    return np.ones(shape)


def MHSA(**changes):
    """A one-head, 2-D layer with the quadratic encoding, with some weights replaced."""
    z = np.zeros((1, 1, 3))
    kw = dict(w_qry=z, w_key=z, w_key_hat=np.eye(3)[None], u=np.zeros((1, 3)),
              v=np.zeros((1, 3)), w_val=np.ones((1, 1, 1)), w_out=np.ones((1, 1)), b_out=np.zeros(1))
    kw.update(changes)
    return ae.MultiHeadSelfAttention(**kw)


def LAYER(*shape, **kw):
    return ae.conv_to_mhsa(W(*shape), alpha=kw.pop("alpha", 1.0), **kw)


try:
    import torch
except ImportError:  # the torch rows are skipped
    torch = None

NAMESPACE = {"np": np, "math": math, "W": W, "X": X, "MHSA": MHSA, "LAYER": LAYER,
             "border_effect": border_effect, "random_instance": random_instance, "torch": torch,
             **{name: getattr(ae, name) for name in ae.__all__ if not name.startswith("_")}}

# (callable, kind of bad input, call, exception, pattern the message must match)
PY_ROWS = [
    # shift_set
    ("shift_set", "zero/negative size", "shift_set(0)", "ParameterValueError", r"`kernel_size` must be >= 1, got 0"),
    ("shift_set", "non-integer size", "shift_set(2.0)", "ParameterTypeError", r"`kernel_size` must be an integer, got float 2.0"),
    ("shift_set", "wrong axes", "shift_set((3, 3), ndim=3)", "ShapeError", r"has 2 axes but `ndim` is 3"),
    ("shift_set", "wrong axes", "shift_set(3, dilation=(1, 1, 1))", "ShapeError", r"`dilation` must be an int or a sequence of 2 ints"),
    ("shift_set", "zero/negative size", "shift_set(3, dilation=0)", "ParameterValueError", r"`dilation` must be >= 1, got 0"),
    # conv
    ("conv", "wrong shapes/axes", "conv(X(5, 2), W(3, 3, 2, 3))", "ShapeError", r"with 2 spatial axes \(from the kernel\), got shape \(5, 2\)"),
    ("conv", "wrong shapes/axes", "conv(X(5, 5, 2), W(3, 3))", "ShapeError", r"`weight` must have shape \(\*kernel_size, d_in // groups, d_out\)"),
    ("conv", "wrong shapes/axes", "conv(X(5, 5, 2), W(3, 3, 2, 3), np.ones(4))", "ShapeError", r"`bias` must have shape \(3,\), got \(4,\)"),
    ("conv", "channel mismatch", "conv(X(5, 5, 3), W(3, 3, 2, 3))", "ShapeError", r"channel mismatch: `x` has 3 channels"),
    ("conv", "groups not dividing channels", "conv(X(5, 5, 4), W(3, 3, 2, 3), groups=2)", "ParameterValueError", r"`groups` \(2\) must divide the output channels \(3\)"),
    ("conv", "zero/negative size", "conv(X(5, 5, 2), W(0, 3, 2, 3))", "ShapeError", r"kernel sizes must be >= 1"),
    ("conv", "zero/negative size", "conv(X(0, 5, 2), W(3, 3, 2, 3))", "ShapeError", r"spatial axis 0 of `x` must have size >= 1, got 0"),
    ("conv", "zero/negative size", "conv(X(5, 5, 2), W(3, 3, 2, 3), stride=0, padding=0)", "ParameterValueError", r"`stride` must be >= 1, got 0"),
    ("conv", "zero/negative size", "conv(X(5, 5, 2), W(3, 3, 2, 3), padding=-1)", "ParameterValueError", r"`padding` must be >= 0, got -1"),
    ("conv", "non-integer size", "conv(X(5, 5, 2), W(3, 3, 2, 3), stride=1.5, padding=0)", "ParameterTypeError", r"`stride` must be an integer, got float 1.5"),
    ("conv", "non-integer size", "conv(X(5, 5, 2), W(3, 3, 2, 3), groups=1.0)", "ParameterTypeError", r"`groups` must be an integer, got float 1.0"),
    ("conv", "NaN/inf values", "conv(X(5, 5, 2) * np.nan, W(3, 3, 2, 3))", "NonFiniteError", r"`x` must hold only finite values, got nan"),
    ("conv", "NaN/inf values", "conv(X(5, 5, 2), W(3, 3, 2, 3) * np.inf)", "NonFiniteError", r"`weight` must hold only finite values, got inf"),
    ("conv", "non-float array", "conv(np.ones((5, 5, 2), int), W(3, 3, 2, 3))", "ParameterTypeError", r"`x` must be a real floating-point array.*got dtype int64"),
    ("conv", "unknown padding", "conv(X(5, 5, 2), W(3, 3, 2, 3), padding='full')", "ParameterValueError", r"`padding` must be 'same', 'valid', an int or a tuple of 2 ints, got 'full'"),
    ("conv", "unknown padding mode", "conv(X(5, 5, 2), W(3, 3, 2, 3), padding_mode='mirror')", "ParameterValueError", r"`padding_mode` must be one of .*got 'mirror'"),
    ("conv", "padding too large for the mode", "conv(X(1, 5, 2), W(3, 3, 2, 3), padding_mode='reflect')", "ShapeError", r"reflect padding needs pad < input size"),
    ("conv", "kernel larger than the input", "conv(X(5, 5, 2), W(3, 3, 2, 3), dilation=4, padding='valid')", "ShapeError", r"kernel larger than the padded input on spatial axis 0"),
    ("conv", "'same' with stride", "conv(X(5, 5, 2), W(3, 3, 2, 3), stride=2)", "ParameterValueError", r"padding='same' is not supported for strided convolutions"),
    # conv_to_mhsa and the layer it returns
    ("conv_to_mhsa", "α < 0", "conv_to_mhsa(W(3, 3, 2, 3), alpha=-1)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -1.0"),
    ("conv_to_mhsa", "α NaN", "conv_to_mhsa(W(3, 3, 2, 3), alpha=math.nan)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got nan"),
    ("conv_to_mhsa", "α too large for the weights' type", "conv_to_mhsa(W(3, 3, 2, 3).astype(np.float16), alpha=40000.0)", "ParameterValueError", r"too large for float16 weights.*largest alpha float16 can hold"),
    ("conv_to_mhsa", "α below the weights' normal range", "conv_to_mhsa(W(3, 3, 2, 3).astype(np.float32), alpha=1e-44)", "ParameterValueError", r"`alpha` must be 0 or at least 1.1754943508222875e-38 \(the smallest normal float32 number\) for float32 weights, got 1e-44"),
    ("conv_to_mhsa", "non-numeric α", "conv_to_mhsa(W(3, 3, 2, 3), alpha='big')", "ParameterTypeError", r"`alpha` must be a real number in \[0, inf\], got str 'big'"),
    ("conv_to_mhsa", "NaN/inf values", "conv_to_mhsa(W(3, 3, 2, 3) * np.nan, alpha=1)", "NonFiniteError", r"`weight` must hold only finite values"),
    ("conv_to_mhsa", "head dimension too small", "conv_to_mhsa(W(3, 3, 2, 3) + np.eye(2, 3), alpha=1, d_head=1)", "HeadDimensionError", r"`d_head` must be >= the rank of every kernel slice"),
    ("conv_to_mhsa", "zero/negative size", "conv_to_mhsa(W(3, 3, 2, 3), alpha=1, d_head=0)", "ParameterValueError", r"`d_head` must be >= 1, got 0"),
    ("conv_to_mhsa", "tolerance < 0", "conv_to_mhsa(W(3, 3, 2, 3), alpha=1, rank_tol=-1.0)", "ParameterValueError", r"`rank_tol` must be a finite number >= 0 or None"),
    ("conv_to_mhsa", "groups not dividing channels", "conv_to_mhsa(W(3, 3, 2, 3), alpha=1, groups=2)", "ParameterValueError", r"`groups` \(2\) must divide the output channels \(3\)"),
    ("conv_to_mhsa", "unknown padding mode", "conv_to_mhsa(W(3, 3, 2, 3), alpha=1, padding_mode='wrap')", "ParameterValueError", r"`padding_mode` must be one of"),
    ("ConvAttention.__call__", "channel mismatch", "LAYER(3, 3, 2, 3)(X(5, 5, 3))", "ShapeError", r"channel mismatch: `x` has 3 channels"),
    ("ConvAttention.__call__", "NaN/inf values", "LAYER(3, 3, 2, 3)(X(5, 5, 2) * np.inf)", "NonFiniteError", r"`x` must hold only finite values, got inf"),
    ("ConvAttention.__call__", "kernel larger than the input", "LAYER(3, 3, 2, 3, padding='valid')(X(2, 5, 2))", "ShapeError", r"kernel larger than the padded input"),
    # MultiHeadSelfAttention
    ("MultiHeadSelfAttention", "wrong shapes/axes", "MHSA(w_key=np.zeros((2, 1, 3)))", "ShapeError", r"`w_key` must have shape \(1, 1, 3\), got \(2, 1, 3\)"),
    ("MultiHeadSelfAttention", "NaN/inf values", "MHSA(v=np.full((1, 3), np.nan))", "NonFiniteError", r"`v` must hold only finite values, got nan"),
    ("MultiHeadSelfAttention", "non-float array", "MHSA(v=np.zeros((1, 3), int))", "ParameterTypeError", r"`v` must be a real floating-point array"),
    ("MultiHeadSelfAttention", "unknown encoding", "MHSA(encoding='sinusoidal')", "ParameterValueError", r"`encoding` must be .*got 'sinusoidal'"),
    ("MultiHeadSelfAttention", "wrong shapes/axes", "MHSA(ndim=3)", "ShapeError", r"the quadratic encoding in 3 dimensions has d_p = 4"),
    ("MultiHeadSelfAttention", "β < 0", "MHSA(beta=-1.0)", "ParameterValueError", r"`beta` must be a real number in \[0, inf\], got -1.0"),
    ("MultiHeadSelfAttention.__call__", "channel mismatch", "MHSA()(X(3, 3, 2))", "ShapeError", r"channel mismatch: the layer expects d_in = 1, `x` has 2"),
    ("MultiHeadSelfAttention.__call__", "wrong shapes/axes", "MHSA()(X(3, 1))", "ShapeError", r"with 2 spatial axes, got shape \(3, 1\)"),
    ("MultiHeadSelfAttention.__call__", "NaN/inf values", "MHSA()(X(3, 3, 1) * np.nan)", "NonFiniteError", r"`x` must hold only finite values, got nan"),
    ("MultiHeadSelfAttention.__call__", "scores overflow (general dense path)", "MHSA(v=np.full((1, 3), -1e307), w_qry=np.ones((1, 1, 3)), w_key=np.ones((1, 1, 3)))(X(9, 9, 1))", "NonFiniteError", r"attention scores overflowed the floating-point range"),
    ("MultiHeadSelfAttention.__call__", "unknown path", "MHSA()(X(3, 3, 1), path='fast')", "ParameterValueError", r"`path` must be"),
    ("MultiHeadSelfAttention.__call__", "queries outside the image", "MHSA()(X(3, 3, 1), queries=(slice(None), [5]))", "ParameterValueError", r"`queries\[1\]` must lie in \[0, 3\), got positions from 5 to 5"),
    ("MultiHeadSelfAttention.__call__", "queries of the wrong kind", "MHSA()(X(3, 3, 1), queries=(slice(None),))", "ShapeError", r"`queries` must be None or a tuple of 2 slices"),
    ("MultiHeadSelfAttention.__call__", "queries of the wrong kind", "MHSA()(X(3, 3, 1), queries=(slice(None), [0.5]))", "ParameterTypeError", r"`queries\[1\]` must be a slice, a range or a 1-D integer array"),
    # bounds
    ("leak_bound", "α < 0", "leak_bound(-1.0, 2)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -1.0"),
    ("leak_bound", "α NaN", "leak_bound(math.nan, 2)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got nan"),
    ("leak_bound", "zero/negative size", "leak_bound(1.0, 0)", "ParameterValueError", r"`ndim` must be >= 1, got 0"),
    ("leak_bound", "non-integer size", "leak_bound(1.0, 2.0)", "ParameterTypeError", r"`ndim` must be an integer, got float 2.0"),
    ("alpha_for_tolerance", "tolerance ≤ 0", "alpha_for_tolerance(0.0, 2)", "ParameterValueError", r"`tol` must be a finite number > 0, got 0.0"),
    ("alpha_for_tolerance", "tolerance ≤ 0", "alpha_for_tolerance(-1e-6, 2)", "ParameterValueError", r"`tol` must be a finite number > 0, got -1e-06"),
    ("alpha_for_tolerance", "NaN/inf values", "alpha_for_tolerance(math.nan, 2)", "ParameterValueError", r"`tol` must be a finite number > 0, got nan"),
    ("alpha_for_tolerance", "NaN/inf values", "alpha_for_tolerance(1e-6, 2, scale=math.inf)", "ParameterValueError", r"`scale` must be a finite number >= 0, got inf"),
    ("alpha_for_tolerance", "non-numeric tolerance", "alpha_for_tolerance('1e-6', 2)", "ParameterTypeError", r"`tol` must be a real number, got str"),
    ("quadratic_encoding", "non-integer offsets", "quadratic_encoding(np.ones((2, 2)))", "ParameterTypeError", r"`offsets` must be an integer array, got dtype float64"),
    ("quadratic_encoding", "wrong shapes/axes", "quadratic_encoding(np.int64(3))", "ShapeError", r"`offsets` must have shape \(\.\.\., D\) with D >= 1"),
    ("quadratic_head_vectors", "α < 0", "quadratic_head_vectors(shift_set(3), -1.0)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -1.0"),
    ("quadratic_head_vectors", "α = inf", "quadratic_head_vectors(shift_set(3), math.inf)", "ParameterValueError", r"`alpha` must be finite here, got inf"),
    # verify and friends
    ("verify", "channel mismatch", "verify(W(3, 3, 2, 3), X(5, 5, 3), alpha=1)", "ShapeError", r"channel mismatch: `x` has 3 channels"),
    ("verify", "NaN/inf values", "verify(W(3, 3, 2, 3), X(5, 5, 2) * np.nan, alpha=1)", "NonFiniteError", r"`x` must hold only finite values, got nan"),
    ("verify", "α NaN", "verify(W(3, 3, 2, 3), X(5, 5, 2), alpha=math.nan)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got nan"),
    ("verify", "unknown option", "verify(W(3, 3, 2, 3), X(5, 5, 2), alpha=1, stide=2)", "ParameterTypeError", r"unknown convolution option\(s\) \['stide'\]"),
    ("verify", "sizes too large for certify", "verify(W(3, 3, 4, 4), X(40, 40, 4), alpha=1, certify=True)", "CertificationSizeError", r"certify=True is limited to"),
    ("verify", "non-boolean flag", "verify(W(3, 3, 2, 3), X(5, 5, 2), alpha=1, sharp='yes')", "ParameterTypeError", r"`sharp` must be True, False or None, got str"),
    ("verify", "no rounding bound exists", "verify(W(3, 3, 1, 1).astype(np.float16), X(31, 31, 1).astype(np.float16), alpha=0.01, path='dense')", "ParameterValueError", r"no rounding bound exists for a sum of \d+ non-zero terms in float16"),
    ("random_instance", "groups not dividing channels", "random_instance(in_channels=8, out_channels=16, groups=3)", "ParameterValueError", r"`groups` \(3\) must divide in_channels \(8\) and out_channels \(16\)"),
    ("random_instance", "negative seed", "random_instance(seed=-3)", "ParameterValueError", r"`seed` must be >= 0, got -3"),
    ("random_instance", "non-integer size", "random_instance(kernel_size=2.0)", "ParameterTypeError", r"`kernel_size` must be an integer, got float 2.0"),
    ("border_effect", "α < 0", "border_effect(W(3, 3, 2, 3), X(5, 5, 2), alpha=-1)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -1.0"),
    ("certified_leak_bound", "α < 0", "certified_leak_bound(-1.0, 2)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -1.0"),
    ("certify_layer", "sizes too large for certify", "certify_layer(LAYER(3, 3, 4, 4), X(40, 40, 4))", "CertificationSizeError", r"certify=True is limited to"),
    ("scale_factor", "channel mismatch", "scale_factor(W(3, 3, 2, 3), X(5, 5, 3))", "ShapeError", r"channel mismatch: `x` has 3 channels"),
    ("scale_from_bound", "NaN/inf values", "scale_from_bound(W(3, 3, 2, 3), math.nan)", "ParameterValueError", r"`x_max` must be a finite number >= 0, got nan"),
    ("scale_from_bound", "negative bound", "scale_from_bound(W(3, 3, 2, 3), -1.0)", "ParameterValueError", r"`x_max` must be a finite number >= 0, got -1.0"),
    ("dtype_alpha_table", "unknown dtype", "dtype_alpha_table(dtypes=('float8',))", "ParameterValueError", r"`dtypes` must be some of .*got 'float8'"),
    # the number of heads (Theorem 1 is tight)
    ("min_heads", "tolerance < 0", "min_heads(W(3, 3, 2, 3), rank_tol=-1.0)", "ParameterValueError", r"`rank_tol` must be a finite number >= 0 or None, got -1.0"),
    ("min_heads", "unknown option", "min_heads(W(3, 3, 2, 3), stide=2)", "ParameterTypeError", r"unknown convolution option\(s\) \['stide'\]"),
    ("heads_lower_bound", "negative head count", "heads_lower_bound(W(3, 3, 2, 3), -1, 5)", "ParameterValueError", r"`n_heads` must be >= 0, got -1"),
    ("heads_lower_bound", "wrong axes", "heads_lower_bound(W(3, 3, 2, 3), 2, (5, 5, 5))", "ShapeError", r"`image_size` must be an int or a sequence of 2 ints"),
    ("heads_lower_bound", "image too small for the theorem", "heads_lower_bound(W(3, 3, 2, 3), 2, (1, 5))", "ShapeError", r"too small for the theorem: no output sees the shift -1 along spatial axis 0"),
    ("conv_to_mhsa", "non-bool flag", "conv_to_mhsa(W(3, 3, 2, 3), alpha=1, drop_zero_heads=1)", "ParameterTypeError", r"`drop_zero_heads` must be True or False, got int 1"),
    # torch interop (rows need torch; they are skipped without it)
    ("from_torch", "not a convolution module", "from_torch(42)", "ParameterTypeError", r"`module` must be a torch.nn.Conv1d, Conv2d or Conv3d, got int"),
    ("from_torch", "α < 0", "from_torch(torch.nn.Conv2d(2, 3, 3), alpha=-1)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -1.0"),
    ("to_torch", "not a layer", "to_torch(42)", "ParameterTypeError", r"`layer` must be a ConvAttention, got int"),
    ("convert_model", "not a network", "convert_model([], alpha=1.0)", "ParameterTypeError", r"`model` must be a torch.nn.Module, got list"),
    ("convert_model", "unknown route", "convert_model(torch.nn.Conv2d(1, 1, 3), alpha=1.0, route='flash')", "ParameterValueError", r"`route` must be one of .*got 'flash'"),
    ("convert_model", "negative band", "convert_model(torch.nn.Conv2d(1, 1, 3), alpha=1.0, band=-1)", "ParameterValueError", r"`band` must be 'auto', an int >= 0 or None, got -1"),
    ("verify_model", "not a network", "verify_model('resnet', torch.zeros(1, 3, 8, 8), alpha=1.0)", "ParameterTypeError", r"`model` must be a torch.nn.Module, got str"),
    ("verify_model", "dtype mismatch", "verify_model(torch.nn.Conv2d(3, 3, 3), torch.zeros(1, 3, 8, 8, dtype=torch.float64), alpha=1.0)", "ParameterTypeError", r"is torch.float32 but `x` is torch.float64"),
    ("verify_model", "α NaN", "verify_model(torch.nn.Conv2d(3, 3, 3), torch.zeros(1, 3, 8, 8), alpha=math.nan)", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got nan"),
    ("verify_model", "input on the meta device", "verify_model(torch.nn.Conv2d(3, 3, 3), torch.zeros(1, 3, 8, 8, device='meta'), alpha=1.0)", "ParameterValueError", r"`x` is on the meta device, which holds no values"),
    ("verify_model", "progress not a bool", "verify_model(torch.nn.Conv2d(3, 3, 3), torch.zeros(1, 3, 8, 8), alpha=1.0, progress='yes')", "ParameterTypeError", r"`progress` must be True, False or None, got 'yes'"),
    # reading attention layers (rows that build a torch module are skipped without torch)
    ("analyse_attention", "not a layer", "analyse_attention('layer', grid=(3, 3))", "ParameterTypeError", r"`layer` must be a MultiHeadSelfAttention, a ConvAttention"),
    ("analyse_attention", "no grid", "analyse_attention(np.ones((2, 3)))", "ParameterValueError", r"the statistics need a grid"),
    ("analyse_attention", "wrong shapes/axes", "analyse_attention(np.ones((2, 3)), grid=(4,))", "ShapeError", r"`grid` must have 2 axes \(the layer's\), got \(4,\)"),
    ("analyse_attention", "unknown component", "analyse_attention(np.ones((1, 2)), components=('z', 'sq'), grid=(3, 3))", "ParameterValueError", r"unknown component 'z'"),
    ("analyse_attention", "content attention without inputs", "analyse_attention(MHSA(w_qry=np.ones((1, 1, 3)), w_key=np.ones((1, 1, 3))), grid=(3, 3))", "ParameterValueError", r"depends on the input \(content terms\): pass inputs `x`"),
    ("analyse_attention", "mask of the wrong shape", "analyse_attention(torch.nn.MultiheadAttention(4, 2), mask=np.zeros((3, 9, 9)))", "ShapeError", r"`mask` must have shape \(n, n\) or \(n_heads, n, n\) = \(2, n, n\)"),
    ("analyse_attention", "token count not a square grid", "analyse_attention(torch.nn.MultiheadAttention(4, 2), mask=np.zeros((12, 12)))", "ShapeError", r"12 tokens do not form a square grid; pass `grid`"),
    ("analyse_attention", "mask without a MultiheadAttention", "analyse_attention(np.ones((1, 3)), grid=(3, 3), mask=np.zeros((9, 9)))", "ParameterValueError", r"`mask` goes with a torch.nn.MultiheadAttention only"),
    ("centres_to_mhsa", "α < 0", "centres_to_mhsa(np.zeros((1, 2)), -1.0, np.ones((1, 1, 1)), np.ones((1, 1)))", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -1.0"),
    ("centres_to_mhsa", "α < 0", "centres_to_mhsa(np.zeros((2, 2)), np.array([1.0, -0.5]), np.ones((2, 1, 1)), np.ones((2, 1)))", "ParameterValueError", r"`alpha` must be a real number in \[0, inf\], got -0.5"),
    ("centres_to_mhsa", "α below the weights' normal range", "centres_to_mhsa(np.zeros((1, 2)), 1e-320, np.ones((1, 1, 1)), np.ones((1, 1)))", "ParameterValueError", r"`alpha` must be 0 or at least 2.2250738585072014e-308 \(the smallest normal float64 number\) for float64 weights, got 1e-320"),
    ("centres_to_mhsa", "NaN/inf values", "centres_to_mhsa(np.array([[np.nan, 0.0]]), 1.0, np.ones((1, 1, 1)), np.ones((1, 1)))", "NonFiniteError", r"`shifts` must hold only finite centres, got nan"),
    ("centres_to_mhsa", "wrong shapes/axes", "centres_to_mhsa(np.zeros((2, 2)), 1.0, np.ones((1, 1, 1)), np.ones((1, 1)))", "ShapeError", r"`centres` must have shape \(n_heads, D\) with n_heads = 1"),
]
TORCH_ROWS = {"from_torch", "to_torch", "convert_model", "verify_model"}

# (subcommand, kind of bad input, argv, "exit 2", pattern of the one line on stderr)
CLI_ROWS = [
    ("verify", "α < 0", "verify --alpha -1", "exit 2", r"--alpha: expected a number >= 0"),
    ("verify", "α NaN", "verify --alpha nan", "exit 2", r"--alpha: expected a number >= 0"),
    ("verify", "zero/negative size", "verify --kernel-size 0", "exit 2", r"--kernel-size: sizes must be >= 1"),
    ("verify", "non-integer size", "verify --image-size 2.5", "exit 2", r"--image-size: expected an integer or AxB"),
    ("verify", "non-integer size", "verify --in-channels two", "exit 2", r"--in-channels: invalid int value"),
    ("verify", "groups not dividing channels", "verify --groups 3", "exit 2", r"`groups` \(3\) must divide"),
    ("verify", "unknown padding mode", "verify --padding-mode mirror", "exit 2", r"`padding_mode` must be one of"),
    ("verify", "unknown padding", "verify --padding full", "exit 2", r"--padding: expected 'same', 'valid'"),
    ("verify", "kernel larger than the input", "verify --image-size 2 --padding valid", "exit 2", r"kernel larger than the padded input"),
    ("verify", "wrong axes", "verify --kernel-size 3x3 --image-size 5x5x5", "exit 2", r"`kernel_size` must be an int or a sequence of 3 ints"),
    ("verify", "sizes too large for certify", "verify --certify --image-size 40", "exit 2", r"certify=True is limited to"),
    ("verify", "negative seed", "verify --seed -3", "exit 2", r"`seed` must be >= 0, got -3"),
    ("(none)", "unknown subcommand", "nonsense", "exit 2", r"invalid choice"),
    ("(none)", "missing subcommand", "", "exit 2", r"required"),
    ("verify", "no PyTorch module for the axes", "verify --torch --ndim 4 --kernel-size 2 --image-size 3", "exit 2", r"PyTorch has convolution modules for 1, 2 and 3 spatial axes"),
    ("derive", "zero/negative size", "derive --ndim 0", "exit 2", r"ndim"),
    ("prove", "unknown claim", "prove --claim Lemma9", "exit 2", r"unknown claim\(s\) \['Lemma9'\]"),
    ("prove", "output file that cannot be written", "prove --latex no-such-folder/x.tex", "exit 2", r"No such file or directory: 'no-such-folder/x.tex'"),
    ("prove", "--coq with an option of the sympy obligations", "prove --coq --claim Lemma1", "exit 2", r"--claim applies to the sympy obligations, not to --coq"),
    ("prove", "--coq-dir without --coq", "prove --coq-dir proofs/coq", "exit 2", r"--coq-dir needs --coq"),
    ("verify", "α too large for float64", "verify --alpha 1e308", "exit 2", r"`alpha` = 1e\+308 is too large"),
    ("verify", "α overflows float64", "verify --alpha 1e400", "exit 2", r"alpha overflows float64: '1e400'"),
    ("verify", "request too large for memory", "verify --image-size 100000", "exit 2", r"this request needs about .* GiB"),
    ("alpha", "zero/negative size", "alpha --tolerance 1e-3 --ndim 0", "exit 2", r"--ndim: expected an integer from 1 to 3, got 0"),
    ("plot", "resolution out of range", "plot heads --out figures --dpi 100000", "exit 2", r"--dpi: expected an integer from 10 to 1200"),
    ("alpha", "tolerance ≤ 0", "alpha --tolerance 0", "exit 2", r"--tolerance: expected a number > 0"),
    ("alpha", "tolerance ≤ 0", "alpha --tolerance=-1e-6", "exit 2", r"--tolerance: expected a number > 0"),
    ("plot", "unknown figure", "plot nonsense --out figures", "exit 2", r"nonsense"),
    ("verify-model", "zero/negative size", "verify-model torch.nn:Identity --input-size 0x8", "exit 2", r"--input-size: sizes must be >= 1"),
    ("verify-model", "α < 0", "verify-model torch.nn:Identity --input-size 3 --alpha -1", "exit 2", r"--alpha: expected a number >= 0"),
    ("verify-model", "malformed factory", "verify-model resnet18 --input-size 3x8x8", "exit 2", r"a factory is written 'package.module:function', got 'resnet18'"),
    ("verify-model", "module that cannot be imported", "verify-model no_such_package:net --input-size 3x8x8", "exit 2", r"cannot import 'no_such_package'"),
    ("verify-model", "factory that is not a network", "verify-model math:pi --input-size 3x8x8", "exit 2", r"'math' has no callable 'pi'"),
    ("verify-model", "input the network cannot take", "verify-model torch.nn:Softmax2d --input-size 5", "exit 2", r"the model fails on `x` of shape \(1, 5\)"),
    ("verify-model", "device this build lacks", "verify-model torch.nn:Identity --input-size 3 --device xpu", "exit 2", r"--device: 'xpu' is not available here"),
    ("verify-model", "unknown device", "verify-model torch.nn:Identity --input-size 3 --device tpu", "exit 2", r"--device: 'tpu' is not available here"),
    ("verify-model", "input on the meta device", "verify-model torch.nn:Identity --input-size 3 --device meta", "exit 2", r"`x` is on the meta device"),
    ("learn", "missing experiment", "learn", "exit 2", r"give one experiment \(teacher or classify\) or --all"),
    ("learn", "--all without a folder", "learn --all", "exit 2", r"--all needs --out DIR"),
    ("learn", "unknown experiment", "learn nonsense", "exit 2", r"invalid choice: 'nonsense'"),
    ("learn", "negative seed", "learn teacher --seed -1", "exit 2", r"--seed: expected an integer from 0"),
    ("learn", "--heads with the CNN", "learn classify --model cnn --heads 64", "exit 2", r"--heads 64 has no meaning with --model cnn"),
]


def _run_python(code):
    try:
        eval(code, dict(NAMESPACE))
    except Exception as exc:  # noqa: BLE001 - the row says which exception
        return exc
    return None


def _run_cli(argv, capsys):
    capsys.readouterr()
    status = cli.main(argv.split())
    captured = capsys.readouterr()
    return status, captured.err


@pytest.mark.parametrize(("target", "kind", "code", "exc_name", "match"), PY_ROWS,
                         ids=[f"{r[0]}:{r[2]}" for r in PY_ROWS])
def test_python_row(target, kind, code, exc_name, match):
    if target in TORCH_ROWS or "torch." in code:
        pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")
    exc_type = getattr(ae, exc_name)
    with pytest.raises(exc_type, match=match) as info:
        eval(code, dict(NAMESPACE))
    assert isinstance(info.value, ae.AttnExpressivityError)
    assert isinstance(info.value, (ValueError, TypeError))


@pytest.mark.parametrize(("target", "kind", "argv", "status", "match"), CLI_ROWS,
                         ids=[f"{r[0]}:{r[2]}" for r in CLI_ROWS])
def test_cli_row(target, kind, argv, status, match, capsys):
    if "--torch" in argv or (target == "verify-model" and "--input-size 0" not in argv
                             and "--alpha" not in argv):          # the rest load the factory with torch
        pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")
    code, err = _run_cli(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert pytest.importorskip("re").search(match, err), err


# --------------------------------------------------------------------------- the docs table


def _cell(text):
    text = " ".join(str(text).split()).replace("|", "\\|")
    return f"`` {text} ``" if text else "(empty)"


def render_table(capsys=None):
    """The Markdown table of every row, with the message each call really gives."""
    lines = ["| callable | bad input | call | raises | message |", "| --- | --- | --- | --- | --- |"]
    for target, kind, code, exc_name, _ in PY_ROWS:
        exc = _run_python(code)
        message = f"{type(exc).__name__}: {exc}" if exc is not None else "(no error)"
        lines.append(f"| `{target}` | {kind} | {_cell(code)} | `{exc_name}` | {_cell(str(exc))} |"
                     if exc is not None else f"| `{target}` | {kind} | {_cell(code)} | `{exc_name}` | {message} |")
    for target, kind, argv, status, _ in CLI_ROWS:
        if capsys is None:
            import contextlib
            import io

            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                cli.main(argv.split())
            err = err.getvalue()
        else:
            _, err = _run_cli(argv, capsys)
        name = "`attn-expressivity`" if target == "(none)" else f"`attn-expressivity {target}`"
        lines.append(f"| {name} | {kind} | {_cell('attn-expressivity ' + argv)} | {status} | {_cell(err.strip())} |")
    return "\n".join(lines) + "\n"


def test_docs_table_matches_rows():
    pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")            # the table is rendered with the torch rows
    text = DOCS.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{DOCS.name} lost its table markers"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip() + "\n"
    assert table == render_table(), (
        "docs/bad_inputs.md is out of date with tests/test_bad_input.py; "
        "regenerate it with `python tests/test_bad_input.py`"
    )


def test_every_public_function_has_a_row():
    covered = {r[0].split(".")[0] for r in PY_ROWS}
    skip = {"ConvAttention", "VerifyReport", "CertificationReport", "Enclosure",
            "AttentionReport"}   # classes built by the library
    public = {n for n in ae.__all__ if not n.endswith("Error")} - skip
    assert public <= covered, sorted(public - covered)


def _write_docs():
    text = DOCS.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOCS.write_text(f"{head}{BEGIN}\n\n{render_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    _write_docs()
    sys.exit(0)


def test_every_subcommand_has_a_row():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(sub.choices) <= {r[0] for r in CLI_ROWS}, sorted(set(sub.choices) - {r[0] for r in CLI_ROWS})
