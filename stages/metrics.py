"""Classification metrics on numpy arrays (no torch, no sklearn), small enough to check by hand."""

from __future__ import annotations

import numpy as np


def top_k_accuracy(probs: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the `k` most probable."""
    if len(y) == 0:
        return float("nan")
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return float((top == y[:, None]).any(axis=1).mean())


def per_class_accuracy(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> dict[int, float]:
    """Recall of each class in `classes` (the share of its photos predicted right)."""
    return {int(c): float((pred[y == c] == c).mean()) for c in classes if (y == c).any()}


def macro_f1(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> float:
    """Unweighted mean F1 over `classes` (a class never predicted and never true is skipped)."""
    scores = []
    for c in classes:
        tp = int(((pred == c) & (y == c)).sum())
        fp = int(((pred == c) & (y != c)).sum())
        fn = int(((pred != c) & (y == c)).sum())
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence: sum over equal-width bins of |accuracy - confidence| * share."""
    if len(y) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    # Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 joins bin 0.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += abs(correct[mask].mean() - confidence[mask].mean()) * mask.mean()
    return float(ece)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average the ranks of tied scores (Mann-Whitney U with the tie correction).
    sorted_scores = scores[order]
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for s, n in zip(start, counts, strict=True):
        if n > 1:
            ranks[order[s : s + n]] = s + (n + 1) / 2
    n_pos, n_neg = len(positive), len(negative)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
