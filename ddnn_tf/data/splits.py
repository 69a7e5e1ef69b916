"""Seeded, stratified carving of one part of a split (validation or test samples)."""

from __future__ import annotations

import numpy as np

__all__ = ["stratified_pick"]


def stratified_pick(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Choose `round(fraction * N)` sample indices, stratified by label.

    Samples are shuffled, then ranked inside their class; each one gets the key
    `(rank + 0.5) / class_size`, and the smallest keys are taken. Every class therefore
    contributes its share up to one sample, and the total is exact.

    Args:
        y: Integer labels, shape `(N,)`.
        fraction: Share of samples to pick, in `[0, 1]`.
        rng: Source of randomness (fixes the choice for a seed).

    Returns:
        A sorted int64 array of the picked indices.
    """
    y = np.asarray(y)
    n = len(y)
    k = int(round(fraction * n))
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    order = rng.permutation(n)
    ys = y[order]
    # Rank of each shuffled sample inside its class: stable sort by label keeps the
    # shuffled order within a class.
    by_label = np.argsort(ys, kind="stable")
    labels, starts, counts = np.unique(ys[by_label], return_index=True, return_counts=True)
    rank = np.empty(n, dtype=np.int64)
    rank[by_label] = np.arange(n) - np.repeat(starts, counts)
    size = counts[np.searchsorted(labels, ys)]
    key = (rank + 0.5) / size
    chosen = order[np.argsort(key, kind="stable")[:k]]
    return np.sort(chosen).astype(np.int64)
