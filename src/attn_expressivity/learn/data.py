"""Texture patches from the images scikit-image ships (no download): brick, grass, gravel.

scikit-image bundles three CC0 texture photographs, ``brick``, ``grass`` and
``gravel`` (512×512, grey). Training patches come from the top half of each
image, test patches from the bottom half, so no test pixel is ever seen in
training. Each patch is standardised on its own (zero mean, unit standard
deviation), so the classes differ by texture, not by brightness or contrast.

Why these: nothing can be downloaded here, and among the data sets installed
packages carry these are the only natural images with several classes and
enough pixels for 16×16 patches with local structure (scikit-learn's digits
are 8×8; scikit-image's other samples are single photographs or a 200-image
face subset).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import OptionalDependencyError, ParameterValueError

__all__ = ["CLASSES", "texture_patches"]

#: The classes, in label order.
CLASSES = ("brick", "grass", "gravel")


def _images() -> list[np.ndarray]:
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - exercised without scikit-image
        raise OptionalDependencyError(
            "the texture data need scikit-image; install the learn extra: pip install 'attn-expressivity[learn]'"
        ) from exc
    return [getattr(data, name)().astype(np.float64) for name in CLASSES]


def _patches(image: np.ndarray, size: int, stride: int) -> np.ndarray:
    h, w = image.shape
    rows = range(0, h - size + 1, stride)
    cols = range(0, w - size + 1, stride)
    return np.stack([image[r:r + size, c:c + size] for r in rows for c in cols])


def texture_patches(size: int = 16, *, train_stride: int = 8, test_stride: int = 16,
                    shuffle_pixels: np.ndarray | None = None) -> dict[str, Any]:
    """Train and test patches ``(n, size, size, 1)`` with labels, standardised per patch.

    Parameters
    ----------
    size : int, optional
        Patch side (default 16).
    train_stride, test_stride : int, optional
        Steps between patches (overlapping training patches by default).
    shuffle_pixels : ndarray of int, shape ``(size * size,)``, optional
        A fixed permutation applied to the pixels of every patch (the control that
        destroys spatial structure but keeps each patch's values).

    Returns
    -------
    dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` (float64 / int64 arrays)
        and ``classes``.

    Raises
    ------
    ParameterValueError
        Sizes below 2 or above 256, strides below 1, a permutation of the wrong length.
    OptionalDependencyError
        Without scikit-image.
    """
    if not 2 <= size <= 256 or train_stride < 1 or test_stride < 1:
        raise ParameterValueError(f"patch size must be in [2, 256] and strides >= 1, got {size}, "
                                  f"{train_stride}, {test_stride}")
    if shuffle_pixels is not None and sorted(np.asarray(shuffle_pixels).tolist()) != list(range(size * size)):
        raise ParameterValueError(f"`shuffle_pixels` must be a permutation of range({size * size})")
    out: dict[str, list[np.ndarray]] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for label, image in enumerate(_images()):
        half = image.shape[0] // 2
        for part, img, stride in (("train", image[:half], train_stride), ("test", image[half:], test_stride)):
            p = _patches(img, size, stride)
            p = (p - p.mean(axis=(1, 2), keepdims=True)) / (p.std(axis=(1, 2), keepdims=True) + 1e-8)
            if shuffle_pixels is not None:
                p = p.reshape(len(p), -1)[:, shuffle_pixels].reshape(p.shape)
            out[f"x_{part}"].append(p[..., None])
            out[f"y_{part}"].append(np.full(len(p), label, dtype=np.int64))
    result: dict[str, Any] = {k: np.concatenate(v) for k, v in out.items()}
    result["classes"] = CLASSES
    return result
