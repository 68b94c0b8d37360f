"""Threads: the package's own workers, and BLAS kept to one thread inside them.

The execution paths split their work into independent pieces (slabs of
queries, heads) and run them on :func:`worker_count` threads; numpy's matrix
products and large elementwise operations release the GIL. Inside those
pieces the BLAS library is held to one thread (:func:`single_blas_thread`,
with ``threadpoolctl`` when it is installed): on a machine whose cores are
busy, a BLAS library that spreads many small products over several threads
spends its time waiting for them.

Environment variables: ``ATTN_EXPRESSIVITY_THREADS`` sets the number of the
package's workers (default: the cores not already busy, :func:`worker_count`);
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` set the
BLAS library's own pool, read when numpy is first imported. ``verify`` holds
BLAS to one thread for its whole run (construction, attention, reference
convolution, bound) when ``threadpoolctl`` is installed; without it, set
``OPENBLAS_NUM_THREADS=1`` (or ``OMP_NUM_THREADS=1``) yourself on a busy machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["map_workers", "single_blas_thread", "worker_count"]

T = TypeVar("T")
_CONTROLLER: list[Any] = []


def worker_count() -> int:
    """Threads the execution paths may use.

    ``ATTN_EXPRESSIVITY_THREADS`` when set; otherwise the cores that are not
    already busy: the core count minus the one-minute load average (rounded),
    at least 1. On a machine whose cores other processes keep busy, extra
    threads only take turns with them, so the paths run on one.

    Examples
    --------
    >>> worker_count() >= 1
    True
    """
    text = os.environ.get("ATTN_EXPRESSIVITY_THREADS", "")
    if text.strip().isdigit() and int(text) >= 1:
        return int(text)
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):              # pragma: no cover - not POSIX
        busy = 0.0
    return max(1, min(cores, cores - round(busy)))


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Hold the BLAS library to one thread inside the block (no-op without ``threadpoolctl``)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:                          # optional: fall back to the environment
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    controller = _CONTROLLER[0]
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def map_workers(fn: Callable[[Any], T], items: Sequence[Any], workers: int) -> list[T]:
    """``[fn(i) for i in items]`` on up to ``workers`` threads, BLAS held to one thread.

    The caller's ``numpy.errstate`` does not reach worker threads; each call runs
    with overflow and invalid operations ignored (the paths check their outputs).
    """
    import numpy as np

    def quiet(item: Any) -> T:
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            return fn(item)

    with single_blas_thread():
        if workers <= 1 or len(items) <= 1:
            return [quiet(i) for i in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(items))) as pool:
            return list(pool.map(quiet, items))
