"""bert_classifier model: the rewired keras-hub BERT, in-graph tokenizing, freezing, the cache."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from projects.bert_classifier.config import BertConfig
from projects.bert_classifier.model import build_model
from tf_finetune.errors import UserError
from tf_finetune.models import frozen_prefix
from tf_finetune.project import Data
from tf_finetune.training import trainer as trainer_lib
from tf_finetune.training.prefix_cache import PrefixCache

from tests.conftest import MINILM
from tests.conftest import MINILM_PARTS
from tests.conftest import require_data
from tests.helpers import assert_saves_and_reloads


@pytest.fixture(scope="module", autouse=True)
def _needs_minilm():
    """Every test here loads the offline MiniLM preset (skips, or fails in CI, without it)."""
    require_data(*MINILM_PARTS)


TEXTS = ["a gripping , funny and moving film .", "dull", "", "naïve but charming — très bien",
         "the plot is a mess and the acting is worse , a waste of two hours of anyone 's life ."]
CLASSES = Data(train=None, val=None, class_names=("negative", "positive"), source="", examples=[])


def build(**settings):
    keras.utils.set_random_seed(0)
    return build_model(BertConfig(preset=MINILM, **settings), CLASSES)


@pytest.fixture(scope="module")
def model():
    return build(freeze_layers=4)


def test_tokenizing_matches_keras_hubs_preprocessor_without_the_padding(model):
    import keras_hub

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(MINILM, sequence_length=24)
    expected = preprocessor(tf.constant(TEXTS))
    tokens = model.get_layer("tokenize")(tf.constant(TEXTS))
    length = tokens["token_ids"].shape[1]
    assert length == int(np.asarray(expected["padding_mask"]).sum(axis=1).max())  # the batch's longest
    np.testing.assert_array_equal(tokens["token_ids"], np.asarray(expected["token_ids"])[:, :length])
    np.testing.assert_array_equal(tokens["padding_mask"], np.asarray(expected["padding_mask"])[:, :length])


def test_the_rewired_encoder_computes_what_keras_hubs_backbone_does(model):
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(MINILM)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(MINILM, sequence_length=32)
    expected = backbone.predict_on_batch(preprocessor(tf.constant(TEXTS)))["pooled_output"]
    # (pooled_dense.output would be its node in the original backbone; the dropout is ours only.)
    pooled = keras.Model(model.input, model.get_layer("classifier_dropout").input)
    np.testing.assert_allclose(pooled.predict_on_batch(tf.constant(TEXTS)), expected, atol=2e-5)


def test_mean_pooling_averages_keras_hubs_sequence_output_over_real_tokens():
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(MINILM)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(MINILM, sequence_length=32)
    inputs = preprocessor(tf.constant(TEXTS))
    sequence = backbone.predict_on_batch(inputs)["sequence_output"]
    mask = np.asarray(inputs["padding_mask"], np.float32)[..., None]
    expected = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
    model = build(freeze_layers=2, pooling="mean")
    pooled = keras.Model(model.input, model.get_layer("classifier_dropout").input)
    np.testing.assert_allclose(pooled.predict_on_batch(tf.constant(TEXTS)), expected, atol=2e-5)
    assert "pooled_dense" not in {layer.name for layer in model.layers}


def test_a_text_gets_the_same_probabilities_alone_or_beside_a_long_one(model):
    together = model.predict_on_batch(tf.constant(TEXTS))
    for i, text in enumerate(TEXTS):
        alone = model.predict_on_batch(tf.constant([text]))
        np.testing.assert_allclose(alone[0], together[i], atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-6)


def test_freeze_layers_chooses_what_trains():
    def trainable(model):
        return sorted({w.path.split("/")[0] for w in model.trainable_weights})

    assert trainable(build(freeze_layers=4)) == [
        "classifier", "pooled_dense", "transformer_layer_4", "transformer_layer_5"]
    assert trainable(build(freeze_layers=-1)) == ["classifier", "pooled_dense"]
    everything = build(freeze_layers=0, freeze_embeddings=False)
    assert frozen_prefix.find_frozen_prefix(everything) is None
    assert len(everything.trainable_weights) == len(everything.weights)


@pytest.mark.parametrize("settings, match", [
    (dict(freeze_layers=7), "only 6 transformer layers"),
    (dict(max_length=1000), "stop at 512 tokens"),
])
def test_settings_the_preset_cannot_take_fail_with_one_line(settings, match):
    with pytest.raises(UserError, match=match):
        build(**settings)


@pytest.mark.parametrize("settings, match", [
    (dict(freeze_layers=2, freeze_embeddings=False), "needs --freeze-embeddings"),
    (dict(fine_tune_epochs=1), "trains in one phase"),
    (dict(word_deletion=0.1), "--no-cache-frozen-prefix"),
    (dict(freeze_layers=-2), "-1 \\(all\\) or at least 0"),
])
def test_contradictory_settings_are_rejected(settings, match):
    with pytest.raises(UserError, match=match):
        BertConfig(**settings)
    BertConfig(word_deletion=0.1, cache_frozen_prefix=False)  # augmentation without the cache is fine


def test_cached_outputs_give_the_same_probabilities_as_the_whole_model(model):
    prefix, top = frozen_prefix.split_model(model)
    texts = tf.data.Dataset.from_tensor_slices((TEXTS, [1, 0, 0, 1, 0])).batch(2)
    cache = PrefixCache.compute(prefix, texts)
    expected = {round(float(p), 5) for p in model.predict_on_batch(tf.constant(TEXTS))[:, 1]}
    # The cache re-batches by length; match examples through their (distinct) probabilities.
    got = np.concatenate([top.predict_on_batch(x)[:, 1] for x, _ in cache.dataset(2)])
    assert len(got) == len(TEXTS)
    for p in got:
        assert min(abs(p - e) for e in expected) < 2e-5


@pytest.mark.parametrize("cache", [True, False])
def test_training_leaves_the_frozen_layers_bit_identical(tmp_path, cache):
    config = BertConfig(preset=MINILM, freeze_layers=5, epochs=1, batch_size=4, learning_rate=1e-3,
                        cache_frozen_prefix=cache, max_length=16)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(lambda: build_model(config, CLASSES))
    names = ["frozen_prefix", "transformer_layer_5_cls", "classifier"]
    before = {n: [w.copy() for w in model.get_layer(n).get_weights()] for n in names}
    texts = ["good", "bad", "great fun", "awful mess", "loved it", "hated it", "fine work", "poor work"]
    ds = tf.data.Dataset.from_tensor_slices((texts, [1, 0] * 4)).batch(4)
    trainer.fit(model, ds, ds)
    for w0, w1 in zip(before["frozen_prefix"], model.get_layer("frozen_prefix").get_weights()):
        np.testing.assert_array_equal(w0, w1)
    for name in ("transformer_layer_5_cls", "classifier"):
        assert any(not np.array_equal(w0, w1)
                   for w0, w1 in zip(before[name], model.get_layer(name).get_weights())), name


def test_the_model_saves_and_reloads_with_its_vocabulary(tmp_path, model):
    # Still frozen: keras-hub layers deserialized frozen would otherwise build trainable parts.
    assert_saves_and_reloads(model, tf.constant(TEXTS), tmp_path, same_trainable_weights=True)
