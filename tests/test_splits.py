"""The shared splits: stratified per-class counts, determinism, order independence; k folds
that partition the data; groups that never cross a split."""

import collections
import random
import types

import pytest

from tf_finetune.errors import UserError
from tf_finetune.data import splits
from tf_finetune.data.splits import stratified_split


def test_each_class_is_split_by_the_fraction_and_everything_is_used_once():
    labels = [0] * 10 + [1] * 5 + [2] * 1
    keys = [f"k{i:02d}" for i in range(len(labels))]
    train, val = stratified_split(keys, labels, 0.2, seed=0)
    assert sorted(train + val) == list(range(16))
    assert [labels[i] for i in val].count(0) == 2 and [labels[i] for i in val].count(1) == 1
    assert 15 in train  # a single-example class stays in training
    assert train == sorted(train) and val == sorted(val)


def test_split_depends_on_keys_and_seed_not_on_input_order():
    keys = [f"file{i}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    train, val = stratified_split(keys, labels, 0.25, seed=3)
    order = list(reversed(range(40)))
    r_train, r_val = stratified_split([keys[i] for i in order], [labels[i] for i in order], 0.25, seed=3)
    assert {keys[order[i]] for i in r_val} == {keys[i] for i in val}
    assert stratified_split(keys, labels, 0.25, seed=4)[1] != val


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_fraction_outside_zero_one_is_an_error(fraction):
    with pytest.raises(UserError, match="Received: validation_split"):
        stratified_split(["a", "b"], [0, 1], fraction, seed=0)


def _grouped(n_groups=60, seed=0):
    """Keys, labels and groups: groups of 1 to 9 examples, each group mostly one class (as
    reviews of one film lean one way)."""
    rng = random.Random(seed)
    keys, labels, groups = [], [], []
    for g in range(n_groups):
        lean = rng.random() < 0.4
        for _ in range(rng.randint(1, 9)):
            keys.append(f"k{len(keys):04d}")
            labels.append(int(lean if rng.random() < 0.8 else not lean))
            groups.append(f"film{g}")
    return keys, labels, groups


@pytest.mark.parametrize("k", [2, 5])
def test_k_folds_partition_the_data_stratified_and_seeded(k):
    labels = [0] * 53 + [1] * 20 + [2] * 7
    keys = [f"k{i:02d}" for i in range(len(labels))]
    folds = splits.k_folds(keys, labels, k, seed=1)
    assert sorted(i for fold in folds for i in fold) == list(range(len(labels)))  # disjoint, covering
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    for c, n in collections.Counter(labels).items():  # each class spread evenly
        counts = [sum(labels[i] == c for i in fold) for fold in folds]
        assert max(counts) - min(counts) <= 1, (c, counts)
    assert splits.k_folds(keys, labels, k, seed=1) == folds
    assert splits.k_folds(keys, labels, k, seed=2) != folds


def test_fold_split_trains_on_the_other_folds():
    labels = [i % 2 for i in range(30)]
    keys = list(range(30))
    folds = splits.k_folds(keys, labels, 3, seed=0)
    for f in (1, 2, 3):
        train, val = splits.fold_split(keys, labels, 3, f, seed=0)
        assert val == folds[f - 1] and sorted(train + val) == keys
    config = types.SimpleNamespace(folds=3, fold=0, seed=0, validation_split=0.2)
    train, val = splits.train_validation(keys, labels, config)  # the refit: everything trains
    assert train == keys and val == folds[0]


@pytest.mark.parametrize("k", [3, 5])
def test_grouped_folds_keep_every_group_in_one_fold(k):
    keys, labels, groups = _grouped()
    folds = splits.k_folds(keys, labels, k, seed=0, groups=groups)
    assert sorted(i for fold in folds for i in fold) == list(range(len(keys)))
    fold_of = {}
    for f, fold in enumerate(folds):
        for i in fold:
            assert fold_of.setdefault(groups[i], f) == f, f"{groups[i]} is in two folds"
    sizes = [len(fold) for fold in folds]
    assert min(sizes) > 0.6 * len(keys) / k
    share = sum(labels) / len(labels)  # stratified as far as whole groups allow
    for fold in folds:
        assert abs(sum(labels[i] for i in fold) / len(fold) - share) < 0.15


@pytest.mark.parametrize("cut", ["split", "hold_out"])
def test_grouped_split_and_test_set_keep_groups_on_one_side(cut):
    keys, labels, groups = _grouped(n_groups=80, seed=3)
    fn = splits.stratified_split if cut == "split" else splits.hold_out
    kept, held = fn(keys, labels, 0.2, 7, groups=groups)
    assert sorted(kept + held) == list(range(len(keys)))
    assert not {groups[i] for i in kept} & {groups[i] for i in held}
    assert 0.12 < len(held) / len(keys) < 0.28
    for c in (0, 1):
        n = labels.count(c)
        assert abs(sum(labels[i] == c for i in held) - 0.2 * n) < 0.1 * n
    assert fn(keys, labels, 0.2, 7, groups=groups) == (kept, held)


def test_folds_need_enough_examples_and_groups():
    with pytest.raises(UserError, match="folds=4 needs at least 4 groups"):
        splits.k_folds(list(range(10)), [0, 1] * 5, 4, seed=0, groups=["a", "b", "c"] * 3 + ["a"])
    with pytest.raises(UserError, match="folds must be at least 2"):
        splits.k_folds(list(range(10)), [0, 1] * 5, 1, seed=0)
