"""Seeded stratified train/validation splits, shared by image folders and text tables."""

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
    by_class = collections.defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    train, val = [], []
    for label in sorted(by_class):
        indices = sorted(by_class[label], key=lambda i: keys[i])
        random.Random(f"{seed}-split-{label}").shuffle(indices)
        n_val = int(round(len(indices) * validation_split))
        n_val = min(max(n_val, 1), len(indices) - 1) if len(indices) >= 2 else 0
        val.extend(indices[:n_val])
        train.extend(indices[n_val:])
    return sorted(train, key=lambda i: keys[i]), sorted(val, key=lambda i: keys[i])
