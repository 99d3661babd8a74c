"""The "auto" thresholds of model.json, chosen on the validation split (and non-dog photos).

- unsure: answering is worth +1 when the top breed is right and -1 when it is wrong; "not sure"
  is worth 0. The threshold on the top-1 probability maximises the total over the validation
  photos, i.e. below it the model is wrong more often than right. It is never below twice the
  uniform probability (2/K; for K < 3 halfway from uniform to 1): a top breed barely above
  chance is no answer, even when a small validation split has no wrong answers down there.
- dog: maximises balanced accuracy (dogs kept on validation, non-dogs rejected), then is capped so
  that at least `KEEP_DOGS` of the validation dogs are still answered. Without non-dog photos it
  is that cap alone.
A chosen threshold sits halfway between the two scores it separates.
"""

from __future__ import annotations

import numpy as np

KEEP_DOGS = 0.99


def _between(sorted_scores: np.ndarray, k: int) -> float:
    """A threshold that puts the `k` lowest scores below it and the rest at or above it."""
    if k <= 0:
        return 0.0
    if k >= len(sorted_scores):
        return float(sorted_scores[-1]) + 1e-6
    return float((sorted_scores[k - 1] + sorted_scores[k]) / 2)


def unsure_threshold(top1_prob: np.ndarray, correct: np.ndarray, n_classes: int) -> float:
    """Top-1 probability below which answers are more often wrong than right (see module doc)."""
    order = np.argsort(top1_prob, kind="stable")
    value = np.where(correct[order], 1.0, -1.0)
    # total value when the k least confident photos are "not sure", for k = 0..N
    totals = value.sum() - np.concatenate([[0.0], np.cumsum(value)])
    floor = min(2.0 / n_classes, (1.0 + 1.0 / n_classes) / 2)  # 2/K, halfway to 1 for K < 3
    return max(_between(top1_prob[order], int(np.argmax(totals))), floor)


def dog_threshold(dog_prob: np.ndarray, not_dog_prob: np.ndarray | None = None) -> float:
    """Dog probability below which a photo is "not a dog" (see module doc)."""
    dogs = np.sort(dog_prob)
    # at most the k-th lowest dog score: the photos at or above it are >= KEEP_DOGS of all dogs
    cap = float(dogs[int(np.floor(len(dogs) * (1 - KEEP_DOGS)))])
    if not_dog_prob is None or len(not_dog_prob) == 0:
        return cap
    scores = np.sort(np.concatenate([dogs, not_dog_prob]))
    candidates = np.unique(np.concatenate([[0.0], (scores[1:] + scores[:-1]) / 2]))
    kept = (dogs[None, :] >= candidates[:, None]).mean(axis=1)
    rejected = (not_dog_prob[None, :] < candidates[:, None]).mean(axis=1)
    balanced = (kept + rejected) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    chosen = candidates[best[len(best) // 2]]  # the middle one of the equally good thresholds
    return float(min(chosen, cap))


def choose(export: dict, val: tuple, not_dog: np.ndarray | None) -> dict[str, float]:
    """export.dog_threshold / unsure_threshold: numbers as given, "auto" by the rules above.

    `val`: (breed probabilities, dog probabilities, labels) of the validation split;
    `not_dog`: dog probabilities of the non-dog photos (or None).
    """
    probs, dog, y = val
    if len(y) == 0 and "auto" in (export["dog_threshold"], export["unsure_threshold"]):
        raise ValueError("the validation split is empty: 'auto' thresholds are chosen on it")
    auto = {
        "dog": lambda: dog_threshold(dog, not_dog),
        "unsure": lambda: unsure_threshold(probs.max(1), probs.argmax(1) == y, probs.shape[1]),
    }
    chosen = {}
    for name, rule in auto.items():
        value = export[f"{name}_threshold"]
        chosen[name] = rule() if value == "auto" else float(value)
    return chosen
