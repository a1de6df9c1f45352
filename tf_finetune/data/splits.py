"""Seeded stratified splits (train/validation, a held-out test set, k folds), shared by image
folders and text tables.

Every split may be grouped: given one group key per example (e.g. the film an IMDB review is
about), all examples of a group land on the same side of every split, so validation measures
what a model does on groups it has never seen. Grouped splits stay stratified as far as whole
groups allow.
"""

import collections
import random

from tf_finetune.errors import UserError


def train_validation(keys, labels, config, groups=None):
    """`(train, validation)` indices as `config` asks: fold `config.fold` of `config.folds`
    (`fold_split`) with cross-validation, else `stratified_split` by `config.validation_split`.

    The refit after a cross-validation (`fold` 0) trains on everything; its validation data is
    then fold 1, which it also trains on (a check that training worked, not an estimate: the
    folds' mean is the estimate)."""
    if config.folds:
        train, val = fold_split(keys, labels, config.folds, config.fold, config.seed, groups)
        if config.fold == 0:
            val = k_folds(keys, labels, config.folds, config.seed, groups)[0]
        return train, val
    return stratified_split(keys, labels, config.validation_split, config.seed, groups)


def describe(config, groups=None):
    """How `train_validation` chose the validation examples, for the run record."""
    how = (f"fold {config.fold} of {config.folds}" if config.folds and config.fold
           else f"refit on all {config.folds} folds, validated on fold 1 (also trained on)" if config.folds
           else f"random {config.validation_split}")
    return how + (" by group" if groups is not None else "")


def stratified_split(keys, labels, validation_split, seed, groups=None):
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
        groups: None, or one group key per example: each group then goes wholly to one side
            (see `_cut_groups`).

    Returns:
        (train, validation): lists of indices into `keys`, each in key order.
    """
    if not 0.0 < validation_split < 1.0:
        raise UserError(
            f"validation_split must be between 0 and 1 (exclusive). Received: "
            f"validation_split={validation_split}"
        )
    if groups is not None:
        return _cut_groups(keys, labels, groups, validation_split, f"{seed}-split")
    return _cut(keys, labels, validation_split, f"{seed}-split", leave=1)


def hold_out(keys, labels, fraction, seed, groups=None):
    """Holds out a seeded stratified `fraction` of the examples: `(rest, held out)` indices.

    For a test set that no choice is made on: each class gives `round(n * fraction)` examples
    (at least one when it has three or more), drawn from a random stream of its own
    (`f"{seed}-test-{label}"`), so the train/validation split of the rest is the same kind of
    split as without a test set. Both lists are in key order. With `groups`, whole groups
    are held out (`_cut_groups`).
    """
    if not 0.0 < fraction < 1.0:
        raise UserError(f"test_split must be between 0 and 1 (exclusive). Received: test_split={fraction}")
    if groups is not None:
        return _cut_groups(keys, labels, groups, fraction, f"{seed}-test")
    return _cut(keys, labels, fraction, f"{seed}-test", leave=2)


def k_folds(keys, labels, k, seed, groups=None):
    """Seeded stratified k-fold cross-validation: `k` lists of indices that partition the
    examples, each in key order; fold `i` validates the model trained on the others.

    Without groups, each class is shuffled from its keys in sorted order
    (`random.Random(f"{seed}-fold-{label}")`) and dealt to the folds in turn, starting where
    the previous class stopped, so fold sizes differ by at most one and every class is spread
    evenly. With `groups`, whole groups are dealt, largest first, each to the fold where its
    classes are most wanted (`_deal_groups`).
    """
    if k < 2:
        raise UserError(f"folds must be at least 2. Received: folds={k}")
    if len(keys) < k:
        raise UserError(f"folds={k} needs at least {k} examples; there are {len(keys)}.")
    if groups is not None:
        if len(set(groups)) < k:
            raise UserError(f"folds={k} needs at least {k} groups; there are {len(set(groups))}.")
        return _deal_groups(keys, labels, groups, k, f"{seed}-fold")
    by_class = collections.defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    folds, turn = [[] for _ in range(k)], 0
    for label in sorted(by_class):
        indices = sorted(by_class[label], key=lambda i: keys[i])
        random.Random(f"{seed}-fold-{label}").shuffle(indices)
        for index in indices:
            folds[turn % k].append(index)
            turn += 1
    return [sorted(fold, key=lambda i: keys[i]) for fold in folds]


def fold_split(keys, labels, k, fold, seed, groups=None):
    """`(train, validation)` indices of fold `fold` (1 to `k`) of `k_folds`; fold 0 means the
    refit on everything: `(all, [])`."""
    if not 0 <= fold <= k:
        raise UserError(f"fold must be in 1..{k} (0 = all the data). Received: fold={fold}")
    if fold == 0:
        return sorted(range(len(keys)), key=lambda i: keys[i]), []
    folds = k_folds(keys, labels, k, seed, groups)
    validation = set(folds[fold - 1])
    train = [i for i in range(len(keys)) if i not in validation]
    return sorted(train, key=lambda i: keys[i]), folds[fold - 1]


def _group_table(keys, labels, groups, stream):
    """`[(group, member indices, class counts)]` in a seeded random order of the groups."""
    members = collections.defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    names = sorted(members, key=str)
    random.Random(stream).shuffle(names)
    return [(name, members[name], collections.Counter(labels[i] for i in members[name])) for name in names]


def _cut_groups(keys, labels, groups, fraction, stream):
    """`(kept, cut)` indices with whole groups cut: groups in a seeded random order, each cut
    when that brings the cut side's class counts closer to `fraction` of each class's total,
    so the cut is about `fraction` of every class. At least one group stays on each side."""
    table = _group_table(keys, labels, groups, stream)
    if len(table) < 2:
        raise UserError(f"A grouped split needs at least two groups; all {len(keys)} examples share one.")
    totals = collections.Counter(labels)
    target = {label: fraction * n for label, n in totals.items()}
    have = collections.Counter()
    cut = []
    for _, indices, counts in table:
        before = sum(abs(have[c] - target[c]) for c in target)
        after = sum(abs(have[c] + counts.get(c, 0) - target[c]) for c in target)
        if after < before:
            cut.append(indices)
            have.update(counts)
    if not cut:  # every group larger than the fraction: cut the smallest one
        cut.append(min((t[1] for t in table), key=len))
    if len(cut) == len(table):
        cut.pop()
    cut = {i for indices in cut for i in indices}
    kept = [i for i in range(len(keys)) if i not in cut]
    return sorted(kept, key=lambda i: keys[i]), sorted(cut, key=lambda i: keys[i])


def _deal_groups(keys, labels, groups, k, stream):
    """`k` folds of whole groups: the largest groups first (ties in a seeded random order),
    each to the fold whose class counts it brings closest to an even share of each class."""
    table = sorted(_group_table(keys, labels, groups, stream), key=lambda t: -len(t[1]))
    totals = collections.Counter(labels)
    share = {label: n / k for label, n in totals.items()}
    have = [collections.Counter() for _ in range(k)]
    folds = [[] for _ in range(k)]
    for _, indices, counts in table:
        def cost(f):
            return sum((have[f][c] + counts.get(c, 0) - share[c]) ** 2 - (have[f][c] - share[c]) ** 2
                       for c in counts)
        best = min(range(k), key=lambda f: (cost(f), len(folds[f]), f))
        folds[best].extend(indices)
        have[best].update(counts)
    return [sorted(fold, key=lambda i: keys[i]) for fold in folds]


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
