"""The shared stratified split: per-class counts, determinism, order independence."""

import pytest

from tf_finetune.errors import UserError
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
