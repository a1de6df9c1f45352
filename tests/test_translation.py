"""translation: tokenizing, splitting, decoding, BLEU and saving, on tiny inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from projects.translation import data as data_lib
from projects.translation import text
from projects.translation.config import TranslationConfig
from projects.translation.lstm import LstmTranslator
from projects.translation.task import corpus_bleu
from projects.translation.transformer import TransformerTranslator
from projects.translation.translator import Translator
from tests.helpers import assert_saves_and_reloads
from tf_finetune.errors import UserError

WORDS = ["i", "am", "tom", ".", "you", "are"]
CHARS = list("我是汤姆。你")


def test_english_words_split_off_punctuation_and_keep_apostrophes():
    words = text.english_words(["Don't go, Tom!", "I'm 18 (almost).", ""]).to_list()
    assert [[w.decode() for w in s] for s in words] == [
        ["don't", "go", ",", "tom", "!"], ["i'm", "18", "(", "almost", ")", "."], []]


def test_chinese_characters_drop_whitespace():
    chars = text.chinese_characters(["他是一个 DJ 。", ""]).to_list()
    assert [b"".join(c).decode() for c in chars] == ["他是一个DJ。", ""]
    assert len(chars[0]) == 7


def test_target_ids_round_trip_through_the_data_pipeline_and_detokenize():
    config = TranslationConfig(batch_size=4)
    pairs = [("I am Tom.", "我是汤姆。"), ("You are Tom.", "你是汤姆。"), ("Tom?", "汤姆？")]
    model = TransformerTranslator(WORDS, CHARS, embedding_dim=8, intermediate_dim=8, num_heads=2)
    seen = {}
    for inputs, target_out, weights in data_lib.make_dataset(pairs, CHARS, config):
        # Batches are grouped by length: each is padded only to its own longest sentence.
        assert target_out.shape[1] == int(np.asarray(weights).sum(axis=1).max())
        np.testing.assert_array_equal(inputs["target_in"][:, 0], text.START_ID)
        back = [s.decode() for s in model.detokenize(target_out).numpy()]
        for row, (english, chinese) in enumerate(zip(inputs["source"].numpy(), back)):
            # target_out is target_in shifted by one, ending with the end mark; padding weighs 0.
            n = int(np.asarray(weights[row]).sum())
            np.testing.assert_array_equal(inputs["target_in"][row, 1:n], target_out[row, : n - 1])
            assert target_out[row, n - 1] == text.END_ID
            seen[english.decode()] = (chinese, n)
    # "？" is not in the vocabulary: it trains as out-of-vocabulary and is dropped on the way back.
    assert seen == {"I am Tom.": ("我是汤姆。", 6), "You are Tom.": ("你是汤姆。", 6), "Tom?": ("汤姆", 4)}


def test_split_keeps_all_translations_of_a_sentence_together():
    pairs = [(f"sentence {i // 3}", f"翻译{i}") for i in range(300)]  # 3 translations each
    train, val, test = data_lib.split_by_source(pairs, 0.1, 0.2, seed=0)
    sources = [{en for en, _ in split} for split in (train, val, test)]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert (len(sources[1]), len(sources[2])) == (10, 20)
    assert len(train) + len(val) + len(test) == 300 and len(test) == 60


def test_read_pairs_skips_and_counts_lines_without_both_sentences(tmp_path, caplog):
    path = tmp_path / "cmn.txt"
    path.write_text("Hi.\t你好。\tCC-BY\nno tab here\n\t只有中文\nRun!\t跑！\n\n", encoding="utf-8")
    assert data_lib.read_pairs(str(path)) == [("Hi.", "你好。"), ("Run!", "跑！")]
    assert "skipped 2 of 4 lines" in caplog.text


@pytest.mark.parametrize("content, match", [
    (b"", "no English<TAB>Chinese lines"),
    (b"Hi.\t\xff\xfe\n", "not UTF-8 text"),
    (b"just english\nmore english\n", "no English<TAB>Chinese lines"),
])
def test_unusable_pair_files_fail_with_one_line(tmp_path, content, match):
    path = tmp_path / "cmn.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        data_lib.read_pairs(str(path))


def test_a_folder_without_the_pairs_file_names_it(tmp_path):
    with pytest.raises(UserError, match="has no cmn.txt"):
        data_lib.resolve_file(str(tmp_path), "cmn_eng")


class ScriptedTranslator(Translator):
    """Decodes a fixed script: at position t the most likely token is `script[t]`."""

    def __init__(self, script, **kwargs):
        super().__init__(WORDS, CHARS, max_target_length=8, **kwargs)
        self.script = script

    def encode(self, source_ids, training=None):
        return (tf.zeros([tf.shape(source_ids)[0], 1]),)

    def decode(self, state, target_in, training=None):
        steps = tf.shape(target_in)[1]
        logits = tf.one_hot(tf.constant(self.script)[:steps], self.target_vocabulary_size) * 5.0
        return tf.broadcast_to(logits, [tf.shape(target_in)[0], steps, self.target_vocabulary_size])


def char_id(c):
    return 4 + CHARS.index(c)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_stops_at_the_end_mark(beam_size):
    # 你 是 [end], then tokens that must never appear; padding/start are never chosen.
    script = [char_id("你"), char_id("是"), text.END_ID, char_id("汤"), char_id("姆"),
              text.START_ID, text.PAD_ID, char_id("我")]
    model = ScriptedTranslator(script)
    out = model.translate(tf.constant(["I am Tom.", ""]), beam_size=beam_size).numpy()
    assert [s.decode() for s in out] == ["你是", "你是"]


def test_without_an_end_mark_decoding_stops_at_max_target_length():
    script = [char_id("我")] * 8
    out = ScriptedTranslator(script).translate(tf.constant(["I"])).numpy()
    assert out[0].decode() == "我" * 7  # max_target_length 8 = the start mark + 7 characters


@pytest.mark.parametrize("cls, settings", [
    (TransformerTranslator, dict(embedding_dim=16, intermediate_dim=32, num_heads=2, num_layers=1)),
    (LstmTranslator, dict(embedding_dim=8, units=16)),
])
def test_a_saved_translator_reloads_with_its_vocabularies(tmp_path, cls, settings):
    keras.utils.set_random_seed(0)
    model = cls(WORDS, CHARS, max_target_length=10, beam_size=2, **settings)
    model.build()
    batch = {"source": tf.constant(["I am Tom.", "You are?"]), "target_in": tf.constant([[2, 4, 5], [2, 9, 0]])}
    sentences = tf.constant(["I am Tom.", "you are tom", ""])
    loaded = assert_saves_and_reloads(model, sentences, tmp_path, call="translate")
    assert type(loaded) is cls and loaded.target_vocabulary == CHARS and loaded.beam_size == 2
    np.testing.assert_allclose(loaded(batch), model(batch), atol=1e-6)


def test_padding_does_not_change_a_sentences_logits():
    keras.utils.set_random_seed(0)
    model = TransformerTranslator(WORDS, CHARS, embedding_dim=16, intermediate_dim=32, num_heads=2)
    alone = model({"source": tf.constant(["I am"]), "target_in": tf.constant([[2, 4]])})
    padded = model({"source": tf.constant(["I am", "you are tom ."]), "target_in": tf.constant([[2, 4, 0], [2, 5, 6]])})
    np.testing.assert_allclose(padded[0, :2], alone[0], atol=1e-5)


def test_character_bleu_uses_every_reference():
    assert corpus_bleu([("我是汤姆。", "我叫汤姆。")], ["我叫汤姆。"]) == pytest.approx(1.0)
    assert corpus_bleu([("我 是 汤姆。",)], ["我是汤姆。"]) == pytest.approx(1.0)  # spaces do not count
    # Same 7 characters, "的" moved: n-gram precisions 7/7, 4/6, 2/5, 1/4, brevity penalty 1.
    score = corpus_bleu([("我是汤姆的朋友",)], ["我是汤姆朋友的"])
    assert score == pytest.approx((7 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25, rel=1e-5)


@pytest.mark.parametrize("settings, match", [
    (dict(embedding_dim=30, num_heads=4), "multiple of --num-heads"),
    (dict(validation_split=0.5, test_split=0.5), "leave some"),
    (dict(max_target_length=1), "at least 2"),
    (dict(fine_tune_epochs=2), "one phase"),
    (dict(beam_size=0), "--beam-size must be at least 1"),
])
def test_contradictory_settings_are_rejected(settings, match):
    with pytest.raises(UserError, match=match):
        TranslationConfig(**settings)
