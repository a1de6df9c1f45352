"""Seeded stratified splits (train/validation, and a held-out test set), shared by image
folders and text tables."""

import collections
import random

from tf_finetune.errors import UserError


def stratified_split(keys, labels, validation_split, seed):
    """Splits examples into (train indices, validation indices), class by class.

    Each class contributes `round(n * validation_split)` examples to validation, at least
    one when it has two or more, so every class is seen on both sides. The result depends
    only on the keys, labels and seed (not on the input order or the process): each class
    is shuffled from its keys in sorted order with `random.Random(f"{seed}-split-{label}")`.

    Args:
        keys: one sortable key per example (file paths, row numbers).
        labels: one class id per example.
        validation_split: fraction held out, in (0, 1).
        seed: int.

    Returns:
        (train, validation): lists of indices into `keys`, each in key order.
    """
    if not 0.0 < validation_split < 1.0:
        raise UserError(
            f"validation_split must be between 0 and 1 (exclusive). Received: "
            f"validation_split={validation_split}"
        )
    return _cut(keys, labels, validation_split, f"{seed}-split", leave=1)


def hold_out(keys, labels, fraction, seed):
    """Holds out a seeded stratified `fraction` of the examples: `(rest, held out)` indices.

    For a test set that no choice is made on: each class gives `round(n * fraction)` examples
    (at least one when it has three or more), drawn from a random stream of its own
    (`f"{seed}-test-{label}"`), so the train/validation split of the rest is the same kind of
    split as without a test set. Both lists are in key order.
    """
    if not 0.0 < fraction < 1.0:
        raise UserError(f"test_split must be between 0 and 1 (exclusive). Received: test_split={fraction}")
    return _cut(keys, labels, fraction, f"{seed}-test", leave=2)


def _cut(keys, labels, fraction, stream, leave):
    """`(kept, cut)` indices: from each class, `round(n * fraction)` examples cut (at least one,
    and at most `n - leave`; none from a class of `leave` or fewer), shuffled from their keys
    in sorted order with `random.Random(f"{stream}-{label}")`."""
    by_class = collections.defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    kept, cut = [], []
    for label in sorted(by_class):
        indices = sorted(by_class[label], key=lambda i: keys[i])
        random.Random(f"{stream}-{label}").shuffle(indices)
        n = min(max(int(round(len(indices) * fraction)), 1), len(indices) - leave) if len(indices) > leave else 0
        cut.extend(indices[:n])
        kept.extend(indices[n:])
    return sorted(kept, key=lambda i: keys[i]), sorted(cut, key=lambda i: keys[i])
