"""Knowledge distillation: soft targets and the loss against hand computations, the transfer
set, the teacher's cached logits against fresh ones, a student with alpha=0 against plain
training, the `distill` command end to end (resume, export), and its bad input.

The teacher is a small sentiment_lstm model trained here on made-up reviews (tmp_path):
what is tested is the mechanics; accuracy is benchmarks/distillation.py's business.
"""

import csv
import json
import math
import os
import random

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, call_cli

from projects.sentiment_lstm.project import PROJECT

GOOD = ["good", "great", "lovely", "fine", "superb", "fun"]
BAD = ["bad", "awful", "dull", "boring", "poor", "weak"]
FILLER = ["the", "film", "plot", "actor", "scene", "story", "was", "and", "a", "very"]
TINY = ["--smoke", "--max-examples-per-class", "60", "--epochs", "1", "--batch-size", "16", "--seed", "3"]


def _write_reviews(folder, classes=("neg", "pos"), n=160):
    """train.csv (n made-up reviews) and dev.csv (n / 4), as SST-2's folder: a fixed split."""
    rng = random.Random(0)
    for name, count in (("train.csv", n), ("dev.csv", n // 4)):
        with open(os.path.join(folder, name), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            for i in range(count):
                label = classes[i % len(classes)]
                words = rng.sample(FILLER, 5) + rng.sample(GOOD if label == "pos" else BAD, 2)
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])
    return str(folder)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return _write_reviews(tmp_path_factory.mktemp("reviews"))


@pytest.fixture(scope="module")
def teacher(reviews, tmp_path_factory):
    """A finished sentiment_lstm run on the reviews: the teacher."""
    from tf_finetune.cli import app

    path = str(tmp_path_factory.mktemp("teacher") / "run")
    status = app.main(PROJECT, ["train", "--smoke", "--data-dir", reviews, "--output-dir", path, "--epochs", "2"])
    assert status == 0
    return path


# --- the loss -------------------------------------------------------------------------------


def test_soft_targets_at_temperature_match_a_hand_computation():
    from tf_finetune.distillation.loss import soft_targets

    got = soft_targets([[2.0, 0.0], [0.0, 0.0]], temperature=2.0)
    e = math.e  # softmax([1, 0])
    np.testing.assert_allclose(got, [[e / (e + 1), 1 / (e + 1)], [0.5, 0.5]], rtol=1e-12)
    # A higher temperature is softer; T = 1 is the plain softmax.
    assert soft_targets([[4.0, 0.0]], 4.0)[0, 0] < soft_targets([[4.0, 0.0]], 1.0)[0, 0]
    np.testing.assert_allclose(soft_targets([[4.0, 0.0]], 1.0)[0, 0], 1 / (1 + math.exp(-4)), rtol=1e-12)


@pytest.mark.parametrize("alpha, temperature", [(0.0, 2.0), (0.5, 2.0), (1.0, 4.0)])
def test_distillation_loss_matches_a_hand_computation(alpha, temperature):
    from tf_finetune.distillation.loss import DistillationLoss
    from tf_finetune.distillation.loss import pack_targets
    from tf_finetune.distillation.loss import soft_targets

    teacher = np.array([[1.5, -0.5, 0.0], [0.2, 0.1, 2.0]])
    student = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], np.float32)
    labels, original = [0, 1], [1, 0]  # the second text is an augmented copy: no true label
    got = float(DistillationLoss(temperature, alpha)(pack_targets(labels, original, teacher), student))

    hard = [-math.log(student[0, 0]), 0.0]
    p_t = soft_targets(teacher, temperature)
    p_s = soft_targets(np.log(student.astype(np.float64)), temperature)
    kl = np.mean(np.sum(p_t * np.log(p_t / p_s), axis=-1))
    want = (1 - alpha) * np.mean(hard) + alpha * temperature**2 * kl
    assert got == pytest.approx(want, rel=1e-4)


def test_alpha_zero_loss_is_keras_sparse_cross_entropy():
    import keras

    from tf_finetune.distillation.loss import DistillationLoss
    from tf_finetune.distillation.loss import pack_targets

    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]], np.float32)
    labels = [0, 0, 1]
    got = DistillationLoss(3.0, 0.0)(pack_targets(labels, [1, 1, 1], np.zeros((3, 2))), probs)
    want = keras.losses.SparseCategoricalCrossentropy()(np.array(labels), probs)
    assert float(got) == float(want)


# --- the transfer set -----------------------------------------------------------------------


def test_transfer_set_keeps_originals_first_and_adds_seeded_unique_copies():
    from tf_finetune.distillation.transfer_set import MASK_TOKEN
    from tf_finetune.distillation.transfer_set import transfer_texts

    texts = [f"w{i} a b c d e f g h" for i in range(50)]
    args = dict(copies=4, mask_prob=0.2, ngram_prob=0.5, ngram_max=3)
    out, sources = transfer_texts(texts, seed=7, **args)
    assert out[:50] == texts and sources[:50] == list(range(50))
    assert (out, sources) == transfer_texts(texts, seed=7, **args)  # a function of the seed
    assert out != transfer_texts(texts, seed=8, **args)[0]
    assert len(set(out)) == len(out) and all(out)  # no duplicates, no empty texts
    assert len(out) > 150
    masked = cut = 0
    for text, source in zip(out[50:], sources[50:]):
        words, original = text.split(), texts[source].split()
        if len(words) < len(original):  # an n-gram: contiguous words of its source (some masked)
            cut += 1
            assert len(words) <= 3
            assert any(all(w == MASK_TOKEN or w == o for w, o in zip(words, original[i:]))
                       for i in range(len(original) - len(words) + 1))
        else:
            assert all(w == MASK_TOKEN or w == o for w, o in zip(words, original))
        masked += words.count(MASK_TOKEN)
    assert cut > 0 and masked > 0
    assert transfer_texts(texts, seed=7, copies=0, mask_prob=0.2, ngram_prob=0.5, ngram_max=3) == (texts, list(range(50)))


def test_sentences_split_at_ends_and_line_breaks_not_after_titles():
    from tf_finetune.distillation.transfer_set import split_sentences

    review = 'I loved it. It\'s great!<br /><br />"Wow," he said. Mr. Smith is 5.5 ft tall? yes. The end'
    assert split_sentences(review) == ["I loved it.", "It's great!", '"Wow," he said.',
                                       "Mr. Smith is 5.5 ft tall? yes.", "The end"]
    # A closing quote or bracket stays with its sentence: only the space between is cut.
    assert split_sentences('He said "great." Then he left! (It was late.) "Why?" she asked.') == [
        'He said "great."', "Then he left!", "(It was late.)", '"Why?" she asked.']


def test_unlabelled_texts_drop_duplicates_and_held_out_texts_by_their_words_and_sample_by_seed():
    from tf_finetune.distillation.transfer_set import unlabelled_texts

    texts = ["A fine film. It's dull! A fine film.", "Great cast.", "a good plot", "THE END"]
    kept, stats = unlabelled_texts(texts, sentences=True, limit=0, seed=0, known=["great cast ."],
                                   held_out=["it 's dull !"])
    # "It's dull!" is the validation text "it 's dull !" tokenized otherwise; "Great cast." is
    # a training text; the second "A fine film." repeats the first.
    assert kept == ["A fine film.", "a good plot", "THE END"]
    assert stats == {"read": 4, "sentences": 6, "duplicates": 2, "held_out": 1, "kept": 3}
    many = [f"text number {i}" for i in range(100)]
    sample, stats = unlabelled_texts(many, sentences=False, limit=10, seed=5)
    assert stats["kept"] == len(sample) == 10 and "sentences" not in stats
    assert sample == sorted(sample, key=many.index)  # file order
    assert sample == unlabelled_texts(many, sentences=False, limit=10, seed=5)[0]
    assert sample != unlabelled_texts(many, sentences=False, limit=10, seed=6)[0]


def test_read_texts_reads_lines_or_a_tables_text_column_and_counts_what_it_skips(tmp_path):
    import gzip

    from tf_finetune.data.text_table import read_texts
    from tf_finetune.errors import UserError

    lines = tmp_path / "texts.txt.gz"
    with gzip.open(lines, "wt", encoding="utf-8") as f:
        f.write("first text\n\n  second text  \n")
    assert read_texts(lines) == (["first text", "second text"], {})
    table = tmp_path / "reviews.csv"
    table.write_bytes(b'review,sentiment\n"Good, really.",positive\n,negative\nfine,\xff\xfe\n')
    assert read_texts(table) == (["Good, really.", "fine"], {"empty text": 1})
    with pytest.raises(UserError, match="no text column 'body'"):
        read_texts(table, text_column="body")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="empty.txt holds no texts"):
        read_texts(tmp_path / "empty.txt")


# --- the teacher ----------------------------------------------------------------------------


def test_cached_teacher_logits_equal_fresh_ones_and_are_never_computed_twice(teacher, tmp_path):
    from tf_finetune.distillation.teacher import LogitCache
    from tf_finetune.distillation.teacher import Teacher

    texts = ["a good and lovely film", "dull boring plot", "the actor was fine", "a good and lovely film"]
    t = Teacher.open(teacher)
    first, stats = t.logits(texts[:2], LogitCache(str(tmp_path), t))
    assert stats["computed"] == 2 and stats["cached"] == 0
    # A new cache object (a new process) reads the file: only the new text is computed.
    again, stats = Teacher.open(teacher).logits(texts, LogitCache(str(tmp_path), t))
    assert stats == {**stats, "cached": 3, "computed": 1}
    fresh = Teacher.open(teacher).predict_logits(texts)
    np.testing.assert_array_equal(again[:2], first)
    np.testing.assert_allclose(again, fresh, atol=1e-6)
    # Log-probabilities: their exponent is the teacher's own output.
    import keras
    import tensorflow as tf

    from tf_finetune.run_dir import RunDir

    model = keras.models.load_model(RunDir(teacher).best_checkpoint)
    np.testing.assert_allclose(np.exp(fresh), model(tf.constant(texts)), atol=1e-6)


def test_the_teacher_caches_its_logits_a_part_at_a_time(teacher, tmp_path, monkeypatch):
    """A run stopped while the teacher labels keeps the parts written so far."""
    from tf_finetune.distillation import teacher as teacher_lib

    monkeypatch.setattr(teacher_lib, "CACHE_PART", 2)
    texts = ["a good film", "dull", "the actor was fine and good", "boring plot", "lovely"]
    t = teacher_lib.Teacher.open(teacher)
    cache = teacher_lib.LogitCache(str(tmp_path), t)
    logits, stats = t.logits(texts, cache)
    assert stats["computed"] == 5
    assert len([n for n in os.listdir(cache.folder) if n.endswith(".npz")]) == 3
    np.testing.assert_allclose(logits, t.predict_logits(texts), atol=1e-6)
    again, stats = t.logits(texts, teacher_lib.LogitCache(str(tmp_path), t))
    assert stats["computed"] == 0
    np.testing.assert_array_equal(again, logits)


# --- the command ----------------------------------------------------------------------------


def _distill(reviews, teacher, out, cache, *extra):
    return ["distill", *TINY, "--data-dir", reviews, "--teacher", teacher, "--teacher-cache", str(cache),
            "--output-dir", str(out), *extra]


def _weights(run):
    import keras

    from tf_finetune.run_dir import RunDir

    return [np.asarray(w) for w in keras.models.load_model(RunDir(run).best_checkpoint).weights]


def test_student_with_alpha_zero_equals_plain_training(reviews, teacher, tmp_path, capsys):
    plain = tmp_path / "plain"
    assert call_cli(PROJECT, ["train", *TINY, "--deterministic", "--data-dir", reviews, "--output-dir", str(plain)],
                    capsys).status == 0
    student = tmp_path / "student"
    result = call_cli(PROJECT, _distill(reviews, teacher, student, tmp_path / "cache", "--deterministic",
                                        "--alpha", "0", "--augment-copies", "0"), capsys)
    assert result.status == 0, result.err[-3000:]
    for got, want in zip(_weights(student), _weights(plain)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_distill_trains_records_resumes_from_the_cache_and_exports(reviews, teacher, tmp_path, capsys):
    from tf_finetune.run_dir import RunDir

    run, cache = tmp_path / "student", tmp_path / "cache"
    args = _distill(reviews, teacher, run, cache, "--augment-copies", "2", "--epochs", "2",
                    "--max-examples-per-class", "0")  # all texts, whatever the seed
    result = call_cli(PROJECT, args, capsys)
    assert result.status == 0, result.err[-3000:]
    record = RunDir(run).read_record()["distillation"]
    transfer = record["transfer_set"]
    assert transfer["augmented_copies"] > 0
    assert transfer["teacher"]["computed"] == transfer["texts"] and transfer["teacher"]["cached"] == 0
    assert record["settings"]["augment_copies"] == 2 and record["teacher_project"] == "sentiment_lstm"
    history = RunDir(run).read_history()
    assert {"val_accuracy", "val_teacher_agreement", "val_loss"} <= set(history)
    metrics = RunDir(run).read_metrics()
    assert metrics["accuracy"] == pytest.approx(history["val_accuracy"][int(np.argmax(history["val_accuracy"]))],
                                                abs=1e-4)

    # A second student of another seed (the split is the data's own): the teacher labels nothing again.
    other = tmp_path / "seed2"
    args2 = _distill(reviews, teacher, other, cache, "--augment-copies", "2", "--epochs", "2",
                     "--max-examples-per-class", "0", "--seed", "4", "--export-dir", str(tmp_path / "export"))
    assert call_cli(PROJECT, args2, capsys).status == 0
    transfer2 = RunDir(other).read_record()["distillation"]["transfer_set"]
    assert transfer2["teacher"]["computed"] == 0 and transfer2["texts"] == transfer["texts"]
    assert os.path.isfile(tmp_path / "export" / "1" / "saved_model.pb")

    # The same run again with other distillation settings is refused, not resumed.
    refused = call_cli(PROJECT, _distill(reviews, teacher, run, cache, "--augment-copies", "2", "--epochs", "2",
                                         "--max-examples-per-class", "0", "--temperature", "5"), capsys)
    assert_one_line_error(refused, "distilled with other settings (temperature differ)")


def _vocabulary(run):
    import keras

    from tf_finetune.run_dir import RunDir

    model = keras.models.load_model(RunDir(run).best_checkpoint)
    layer = next(layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.TextVectorization))
    return set(layer.get_vocabulary())


def test_unlabelled_transfer_texts_join_the_set_and_the_vocabulary_but_never_a_validation_text(
        reviews, teacher, tmp_path, capsys):
    from tf_finetune.data.text_table import read_table
    from tf_finetune.run_dir import RunDir

    dev = read_table(os.path.join(reviews, "dev.csv")).texts
    extra = tmp_path / "unlabelled.txt"
    # Three sentences of unseen words, one of them twice, and a validation text capitalised.
    extra.write_text("A marvellous picture. Truly marvellous!\nA marvellous picture.\n"
                     f"{dev[0].capitalize()}.\nAn abysmal sequel.\n", encoding="utf-8")
    run, cache = tmp_path / "student", tmp_path / "cache"
    result = call_cli(PROJECT, _distill(reviews, teacher, run, cache, "--augment-copies", "0",
                                        "--transfer-texts", str(extra), "--transfer-sentences"), capsys)
    assert result.status == 0, result.err[-3000:]
    transfer = RunDir(run).read_record()["distillation"]["transfer_set"]
    assert transfer["unlabelled_texts"] == {"read": 4, "sentences": 5, "duplicates": 1, "held_out": 1, "kept": 3}
    assert transfer["texts"] == transfer["training_texts"] + 3 == transfer["teacher"]["computed"]
    assert {"marvellous", "abysmal", "sequel"} <= _vocabulary(run)
    # Without them, the vocabulary is the training texts' alone.
    plain = tmp_path / "plain"
    assert call_cli(PROJECT, _distill(reviews, teacher, plain, cache, "--augment-copies", "0"), capsys).status == 0
    assert not {"marvellous", "abysmal", "sequel"} & _vocabulary(plain)
    assert "unlabelled_texts" not in RunDir(plain).read_record()["distillation"]["transfer_set"]


# --- bad input ------------------------------------------------------------------------------


def _fake_run(folder, project, classes=("negative", "positive")):
    os.makedirs(folder)
    with open(os.path.join(folder, "run.json"), "w", encoding="utf-8") as f:
        json.dump({"project": project, "class_names": list(classes)}, f)
    return str(folder)


@pytest.mark.parametrize("case, expected", [
    ("other_classes", "predicts the classes ['neg', 'pos'], the student's data has ['bad', 'good', 'mixed']"),
    ("image_teacher", "is a plant_cnn run, which does not classify text"),
    ("translation_teacher", "is a translation run, which does not classify text"),
    ("not_a_teacher", "is not a run directory or a SavedModel"),
    ("no_teacher", "--teacher is required"),
    ("temperature", "--temperature must be positive"),
    ("alpha", "--alpha must be in [0, 1]"),
    ("transfer_texts_missing", "missing.txt does not exist: pass a .txt file"),
    ("transfer_max_alone", "--transfer-max applies to --transfer-texts, which is not given"),
])
def test_distill_bad_input_is_one_line_and_writes_nothing(case, expected, reviews, teacher, tmp_path, capsys):
    out = tmp_path / "out"
    data, teacher_arg, extra = reviews, teacher, []
    if case == "other_classes":
        os.makedirs(tmp_path / "three")
        data = _write_reviews(str(tmp_path / "three"), classes=("bad", "good", "mixed"), n=90)
    elif case == "image_teacher":
        teacher_arg = _fake_run(tmp_path / "plant", "plant_cnn")
    elif case == "translation_teacher":
        teacher_arg = _fake_run(tmp_path / "translation", "translation")
    elif case == "not_a_teacher":
        teacher_arg = str(tmp_path)
    elif case == "temperature":
        extra = ["--temperature", "0"]
    elif case == "alpha":
        extra = ["--alpha", "1.5"]
    elif case == "transfer_texts_missing":
        extra = ["--transfer-texts", str(tmp_path / "missing.txt")]
    elif case == "transfer_max_alone":
        extra = ["--transfer-max", "100"]
    args = _distill(data, teacher_arg, out, tmp_path / "cache", *extra)
    if case == "no_teacher":
        args = [a for a in args if a not in ("--teacher", teacher_arg)]
    assert_one_line_error(call_cli(PROJECT, args, capsys), expected)
    assert not os.path.exists(out)


def test_logit_cache_reads_back_every_key(tmp_path):
    """Including a text whose SHA-1 ends in a zero byte (NumPy bytes arrays drop those)."""
    import hashlib
    import types

    from tf_finetune.distillation.teacher import LogitCache

    text = next(f"text {i}" for i in range(10_000) if hashlib.sha1(f"text {i}".encode()).digest()[-1] == 0)
    teacher = types.SimpleNamespace(identity="ab" * 32, class_names=("a", "b"))
    LogitCache(str(tmp_path), teacher).add([text, "other"], [[1.0, 2.0], [3.0, 4.0]])
    logits, missing = LogitCache(str(tmp_path), teacher).lookup(["other", text, "new"])
    assert missing == [2]
    np.testing.assert_array_equal(logits[:2], [[3.0, 4.0], [1.0, 2.0]])
