"""A progress bar (tqdm) on stderr for long runs, or the plain iterable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress"]


def progress(items: Iterable[T], show: bool, description: str) -> Iterator[T] | Iterable[T]:
    """``items`` wrapped in a tqdm bar when ``show`` (tqdm is part of the ``learn`` extra).

    Examples
    --------
    >>> list(progress(range(3), False, "quiet"))
    [0, 1, 2]
    """
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, leave=False, mininterval=1.0, dynamic_ncols=True)
