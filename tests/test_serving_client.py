"""The standalone `client.py` of LiteRT/ONNX exports makes TensorFlow's tensors and runs them.

- Text: both sentiment standardizations and keras-hub's BERT WordPiece give the ids TensorFlow
  gives, on tricky Unicode, every code point, SST-2 and IMDB.
- Images: decoding and the half-pixel bilinear resize give `image_folder.decode_image`'s pixels
  (exactly, but for JPEG, where TensorFlow's fast integer IDCT differs from PIL's accurate one).
- Runners: LiteRT (dynamic batch, batch 1, int8) and ONNX outputs equal Keras's; inputs are fed
  in the model's order whatever order the artifact lists them in.
- The contract: `python client.py` runs with neither TensorFlow, Keras nor tf_finetune imported.
"""

import csv
import glob
import gzip
import io
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from projects.sentiment_lstm import layers as sentiment_layers
from tests.conftest import MINILM_PARTS
from tests.conftest import require_data
from tf_finetune.data import image_folder
from tf_finetune.serving import client

TRICKY_TEXTS = [
    "Don't STOP", "it 's", "do n't", "DON'T", "don'té", "can't've", "n't", "isn't_it", "'quoted' \"twice\"",
    "<br />line<BR/>two<br>three<br\t/>four< br />", "tab\there\nnewline\rcr\x0bvt\x0cff",
    "a\u00a0b", "a\u2028b\u2029c", "x\u0085y", "\u3000wide space", "a\u200bb", "soft\u00adhyphen", "x\u200dy",
    "Café naïve ÀÉÎ Ångström", "e\u0301 combining a\u0300", "İstanbul ΣΑΣ Straße ǅ", "ａｂｃ ＡＢＣ",
    "東京タワー 我爱北京 한국어", "😀👍🏽 great", "x²y ½ ①", "Ⅻ ⅻ roman", "١٢٣ arabic digits", "\ue000private",
    "a\u0378unassigned", "\x1cfile\x1fsep", "x_y-z.w", "$100,000.00!!!", "...", "   ", "", "\U00011f04kawi",
    "\U0001343aegyptian", "ﬁne ligature", "™ …", "Mr.Smith's—dash–en",
]


def sst2_texts(split, n=None):
    path = require_data("sst2", f"{split}.tsv")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").rsplit("\t", 1)[0] for line in f][1:]
    return rows[:n] if n else rows


def imdb_texts(n):
    path = require_data("imdb", "imdb_reviews.csv.gz")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return [row["review"] for row, _ in zip(reader, range(n))]


def every_code_point():
    """One string per assigned code point (Unicode 15.0, as RE2 knows it)."""
    points = [c for c in range(1, 0x110000)
              if not 0xD800 <= c <= 0xDFFF and client.unicode_category(chr(c)) != "Cn"]
    return [f"A{chr(c)}b" for c in points]


def mismatches(got_rows, want_rows, texts, limit=5):
    """`(count, first few texts)` of the rows that differ."""
    bad = [t for g, w, t in zip(got_rows, want_rows, texts) if not np.array_equal(g, w)]
    return len(bad), [repr(t)[:80] for t in bad[:limit]]


# === Text: TextVectorization standardizations ===

STANDARDIZATIONS = {
    "lower_nt_alnum": sentiment_layers.standardize,
    "lower_strip_punctuation": sentiment_layers.standardize_seed,
}


@pytest.mark.parametrize("kind", sorted(STANDARDIZATIONS))
def test_standardization_equals_tensorflow_on_every_code_point(kind):
    texts = TRICKY_TEXTS + every_code_point()
    want = [t.decode("utf-8") for t in STANDARDIZATIONS[kind](tf.constant(texts)).numpy()]
    got = [client.STANDARDIZATIONS[kind](t) for t in texts]
    count, examples = mismatches(got, want, texts)
    assert count == 0, f"{count} of {len(texts)} texts standardize differently, e.g. {examples}"


@pytest.mark.parametrize("kind", sorted(STANDARDIZATIONS))
def test_vocabulary_ids_equal_text_vectorization(kind, tmp_path):
    sst2 = sst2_texts("train", 2000)
    texts = TRICKY_TEXTS + sst2 + imdb_texts(300)
    length = 400  # most reviews fit; the longer ones are truncated
    vectorize = keras.layers.TextVectorization(standardize=STANDARDIZATIONS[kind], output_sequence_length=length)
    vectorize.adapt(tf.constant(sst2 + TRICKY_TEXTS[::2]))  # IMDB words are often out of vocabulary
    vocabulary = vectorize.get_vocabulary()
    (tmp_path / "vocabulary.txt").write_text("".join(f"{t}\n" for t in vocabulary), encoding="utf-8")
    settings = {"kind": "text_vocabulary", "standardize": kind, "vocabulary": "vocabulary.txt",
                "oov_id": 1, "pad_id": 0, "max_length": length}
    encoder = client.VocabularyEncoder(settings, str(tmp_path))
    assert encoder.vocabulary == vocabulary
    (ids,) = encoder(texts, [{"name": "token_ids", "shape": [None, length], "dtype": "int64"}])
    want = vectorize(tf.constant(texts)).numpy()
    assert ids.dtype == np.int64 and ids.shape == want.shape
    count, examples = mismatches(ids, want, texts)
    assert count == 0, f"{count} of {len(texts)} texts get other ids, e.g. {examples}"
    (ids32,) = encoder(texts[:3], [{"name": "x", "shape": [None, length], "dtype": "int32"}])
    assert ids32.dtype == np.int32


# === Text: BERT WordPiece ===


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """keras-hub's MiniLM tokenizer and the client's encoder of its exported vocabulary."""
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer.from_preset(require_data(*MINILM_PARTS))
    folder = tmp_path_factory.mktemp("wordpiece")
    (folder / "vocabulary.txt").write_text("".join(f"{t}\n" for t in tokenizer.vocabulary), encoding="utf-8")
    settings = {"kind": "wordpiece", "vocabulary": "vocabulary.txt", "lowercase": tokenizer.lowercase,
                "strip_accents": tokenizer.strip_accents, "max_length": 128, "cls": "[CLS]", "sep": "[SEP]",
                "pad": "[PAD]", "unk": "[UNK]"}
    return tokenizer, client.WordPieceEncoder(settings, str(folder))


def bert_inputs(length=None):
    return [{"name": "token_ids", "shape": [None, length], "dtype": "int32"},
            {"name": "padding_mask", "shape": [None, length], "dtype": "int32"}]


WORDPIECE_TEXTS = TRICKY_TEXTS + [
    "Café naïve Résumé", "我爱北京天安门", "日本語のテキスト", "!!!???...---", "--==>>", "a" * 99, "a" * 100,
    "a" * 101, "é" * 50, "é" * 51, "supercalifragilisticexpialidocious " * 3, "\u115f", "x\u115fy",
    "U.S.A. costs $1,000.50", "[CLS] [SEP] [UNK]", "##ing", "㍿ ﷺ", "word " * 200,
]


def test_wordpiece_equals_bert_tokenize(bert):
    from projects.bert_classifier.layers import BertTokenize

    tokenizer, encoder = bert
    texts = WORDPIECE_TEXTS + sst2_texts("dev")
    want = BertTokenize(tokenizer, max_length=128)(tf.constant(texts))
    token_ids, padding_mask = encoder(texts, bert_inputs())  # padded to the longest, as BertTokenize
    assert token_ids.shape == tuple(want["token_ids"].shape)
    count, examples = mismatches(token_ids, want["token_ids"].numpy(), texts)
    assert count == 0, f"{count} of {len(texts)} texts get other token ids, e.g. {examples}"
    np.testing.assert_array_equal(padding_mask, want["padding_mask"].numpy())
    # A fixed sequence length in the input spec: padded to it, in the order the spec lists.
    mask, ids = encoder(texts[:5], bert_inputs(128)[::-1])
    width = want["token_ids"].shape[1]
    np.testing.assert_array_equal(ids[:, :width], want["token_ids"].numpy()[:5])
    assert ids.shape == (5, 128) and not ids[:, width:].any() and not mask[:, width:].any()


def test_wordpiece_equals_keras_hub_on_code_points(bert):
    """Every fifth code point (the whole range passes too, in about 30 s), alone and beside
    accented capitals, with and without accent stripping."""
    import keras_hub

    tokenizer, encoder = bert
    texts = [f"{t[1]} é{t[1]}Ä" for t in every_code_point()[::5]]
    for strip_accents in (False, True):
        encoder.strip_accents = strip_accents
        wordpiece = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=tokenizer.vocabulary, lowercase=True, strip_accents=strip_accents)
        want = tf.function(wordpiece)(tf.constant(texts)).to_list()
        got = [encoder.encode(t) for t in texts]
        count, examples = mismatches(got, want, texts)
        assert count == 0, f"strip_accents={strip_accents}: {count} of {len(texts)} differ, e.g. {examples}"
    encoder.strip_accents = tokenizer.strip_accents


# === Images ===


def tf_pixels(data, size=(224, 224), dct_method=None):
    """`image_folder.decode_image` (optionally with another JPEG IDCT), as float32."""
    if dct_method is None:
        return image_folder.decode_image(data, size).numpy().astype(np.float32)
    image = tf.io.decode_jpeg(data, channels=3, dct_method=dct_method)
    return image_folder.resize_image(image, size).numpy().astype(np.float32)


def test_plantvillage_jpegs_are_within_a_few_levels(shared_data):
    """TensorFlow decodes JPEGs with libjpeg's fast integer IDCT and PIL with the accurate one:
    a few levels apart. With TensorFlow's accurate IDCT, the pixels are the same."""
    encoder = client.ImageEncoder({"size": [224, 224]}, ".")
    paths = sorted(glob.glob(os.path.join(shared_data, "plantvillage", "*", "*.jpg")))[::600][:4]
    assert paths
    diffs = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        got = encoder.pixels(path).astype(np.float32)
        diff = np.abs(got - tf_pixels(data))
        diffs.append((diff.max(), diff.mean()))
        np.testing.assert_array_equal(got, tf_pixels(data, dct_method="INTEGER_ACCURATE"))
    assert max(d[0] for d in diffs) <= 8 and max(d[1] for d in diffs) <= 1.5, diffs


def encoded(image, fmt, **kwargs):
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def test_png_gif_bmp_pixels_equal_tensorflow(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (150, 97, 3), dtype=np.uint8)  # upscaled in height, width
    rgb, gray = Image.fromarray(pixels), Image.fromarray(pixels[:, :, 0])
    frames = [Image.fromarray(rng.integers(0, 256, (300, 257, 3), dtype=np.uint8)).quantize(16) for _ in range(3)]
    images = {
        "rgb.png": encoded(rgb, "PNG"),
        "gray.png": encoded(gray, "PNG"),
        "rgba.png": encoded(Image.fromarray(np.dstack([pixels, pixels[:, :, :1]])), "PNG"),
        "palette.png": encoded(rgb.quantize(32), "PNG", transparency=3),
        "sixteen_bit.png": encoded(Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257), "PNG"),
        "rgb.bmp": encoded(rgb, "BMP"),
        "gray.bmp": encoded(gray, "BMP"),
        "rgb.gif": encoded(rgb.quantize(64), "GIF"),
        "transparent.gif": encoded(rgb.quantize(64), "GIF", transparency=5),
        "animated.gif": encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),  # downscaled
    }
    encoder = client.ImageEncoder({"size": [224, 224]}, ".")
    for name, data in images.items():
        (tmp_path / name).write_bytes(data)
        for raw in (data, str(tmp_path / name)):
            np.testing.assert_array_equal(encoder.pixels(raw), tf_pixels(data), err_msg=name)
    (batch,) = encoder(list(images.values()), [{"name": "x", "shape": [None, 224, 224, 3], "dtype": "float32"}])
    assert batch.shape == (len(images), 224, 224, 3) and batch.dtype == np.float32


def test_resize_equals_tf_image_resize():
    rng = np.random.default_rng(1)
    for shape, size in [((300, 257), (224, 224)), ((100, 150), (224, 224)), ((7, 5), (3, 11)), ((1, 1), (4, 4))]:
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        want = tf.image.resize(image, size, method="bilinear").numpy()
        np.testing.assert_array_equal(client.resize_bilinear(image, size), want)


def test_npy_files_are_taken_as_pixels(tmp_path):
    one = np.random.default_rng(2).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "one.npy", one)
    np.save(tmp_path / "two.npy", np.stack([one, one + 1]))
    encoder = client.ImageEncoder({"size": [8, 8]}, ".")
    (batch,) = encoder([str(tmp_path / "one.npy"), str(tmp_path / "two.npy")],
                       [{"name": "x", "shape": [None, 8, 8, 3], "dtype": "float32"}])
    np.testing.assert_array_equal(batch, np.stack([one, one, one + 1]))


# === Runners ===


def dense_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def two_input_model():
    """`a - 2 b`: feeding the inputs swapped gives another answer."""
    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,)), keras.Input((4,))
    x = keras.layers.Subtract()([a, keras.layers.Rescaling(2.0)(b)])
    return keras.Model([a, b], keras.layers.Dense(3, activation="softmax")(x))


def int8_settings(calibration):
    return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": lambda: iter(calibration),
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            "inference_input_type": tf.int8, "inference_output_type": tf.int8}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Tiny models, their Keras outputs on a batch, and their LiteRT/ONNX files."""
    folder = tmp_path_factory.mktemp("runners")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4)).astype(np.float32)
    y = rng.normal(size=(150, 4)).astype(np.float32)
    dense, two = dense_model(), two_input_model()
    paths = {}
    spec = tf.TensorSpec([None, 4], tf.float32)
    for name, model, signature, settings in [
        ("dense.tflite", dense, [spec], {}),
        ("dense.onnx", dense, [spec], {}),
        ("dense_batch1.tflite", dense, [tf.TensorSpec([1, 4], tf.float32)], {}),
        ("dense_int8.tflite", dense, [spec], int8_settings([[x[i:i + 1]] for i in range(100)])),
        ("two_args.tflite", two, [[spec, spec]], {}),
        ("two_args.onnx", two, [[spec, spec]], {}),
    ]:
        paths[name] = str(folder / name)
        model.export(paths[name], format="litert" if name.endswith(".tflite") else "onnx",
                     input_signature=signature, verbose=False, **settings)
    # Named inputs that sort in the other order ("padding_mask" < "token_ids"), beside their
    # preprocessing.json.
    named = folder / "named"
    named.mkdir()
    specs = [tf.TensorSpec([None, 4], tf.float32, name="token_ids"),
             tf.TensorSpec([None, 4], tf.float32, name="padding_mask")]
    for name in ("model.tflite", "model.onnx"):
        paths[f"named/{name}"] = str(named / name)
        two.export(paths[f"named/{name}"], format="litert" if name.endswith(".tflite") else "onnx",
                   input_signature=[specs], verbose=False)
    inputs = [{"name": "token_ids", "shape": [None, 4], "dtype": "float32"},
              {"name": "padding_mask", "shape": [None, 4], "dtype": "float32"}]
    (named / "preprocessing.json").write_text(json.dumps({"inputs": inputs}))
    expected = {"dense": dense.predict_on_batch(x), "two": two.predict_on_batch([x, y])}
    return paths, (x, y), expected


@pytest.mark.parametrize("name", ["dense.tflite", "dense.onnx", "dense_batch1.tflite"])
def test_float_runners_equal_keras(artifacts, name):
    paths, (x, _), expected = artifacts
    run = client.load_runner(paths[name])
    for n in (10, 150):  # 150: several LiteRT chunks
        np.testing.assert_allclose(run([x[:n]]), expected["dense"][:n], atol=1e-5)
    assert run([x[:0]]).shape == (0, 3)


def test_batch1_litert_runs_one_example_at_a_time(artifacts):
    run = client.load_runner(artifacts[0]["dense_batch1.tflite"])
    assert run.fixed_batch == 1


def test_int8_runner_quantizes_and_dequantizes(artifacts):
    paths, (x, _), expected = artifacts
    run = client.load_runner(paths["dense_int8.tflite"])
    assert np.dtype(run.inputs[0]["dtype"]) == np.int8 and run.inputs[0]["quantization"][0] > 0
    got = run([x[:10]])
    assert got.dtype == np.float32
    want = expected["dense"][:10]
    np.testing.assert_allclose(got, want, atol=0.05)
    top2 = np.sort(want, -1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1  # no near ties
    np.testing.assert_array_equal(got.argmax(-1)[clear], want.argmax(-1)[clear])


@pytest.mark.parametrize("name", ["two_args.tflite", "two_args.onnx", "named/model.tflite", "named/model.onnx"])
def test_two_input_runners_feed_the_model_order(artifacts, name):
    paths, (x, y), expected = artifacts
    run = client.load_runner(paths[name])  # the named ones read ../preprocessing.json
    np.testing.assert_allclose(run([x[:10], y[:10]]), expected["two"][:10], atol=1e-5)


def test_input_order():
    names = ["args_0", "args_0_1", "args_0_10", "args_0_11", "args_0_2"]
    assert client.input_order(names) == ["args_0", "args_0_1", "args_0_2", "args_0_10", "args_0_11"]
    assert client.input_order(["padding_mask", "token_ids"], ["token_ids", "padding_mask"]) == [
        "token_ids", "padding_mask"]
    assert client.input_order(["b", "a"], ["x", "y"]) == ["b", "a"]  # unknown names: as listed


# === The standalone contract ===

STANDALONE = """
import runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
    code = 0
except SystemExit as e:
    code = e.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_finetune", "keras_hub"))
assert not loaded, loaded
sys.exit(code)
"""


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    """An export folder of a tiny text classifier: client.py, both artifacts, preprocessing.json."""
    folder = tmp_path_factory.mktemp("export")
    vocabulary = ["", "[UNK]", "good", "bad", "film", "not", "great", "awful"]
    (folder / "vocabulary.txt").write_text("".join(f"{t}\n" for t in vocabulary), encoding="utf-8")
    (folder / "labels.txt").write_text("negative\npositive\n", encoding="utf-8")
    spec = {"inputs": [{"name": "token_ids", "shape": [None, 6], "dtype": "int32"}], "labels": "labels.txt",
            "preprocessing": {"kind": "text_vocabulary", "standardize": "lower_nt_alnum",
                              "vocabulary": "vocabulary.txt", "oov_id": 1, "pad_id": 0, "max_length": 6}}
    (folder / "preprocessing.json").write_text(json.dumps(spec), encoding="utf-8")
    keras.utils.set_random_seed(0)
    ids = keras.Input((6,), dtype="int32")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(len(vocabulary), 4)(ids))
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(x))
    signature = [tf.TensorSpec([None, 6], tf.int32)]
    model.export(str(folder / "model.tflite"), format="litert", input_signature=signature, verbose=False)
    model.export(str(folder / "model.onnx"), format="onnx", input_signature=signature, verbose=False)
    shutil.copyfile(client.__file__, folder / "client.py")
    return folder, model


def run_client(folder, *args):
    result = subprocess.run([sys.executable, "-c", STANDALONE, str(folder / "client.py"), *args],
                            cwd=folder, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_client_py_runs_without_tensorflow(text_export):
    folder, model = text_export
    texts = ["A great, GOOD film!", "awful... not good", "unknown words only"]
    (folder / "texts.txt").write_text("\n".join(texts[1:]) + "\n\n", encoding="utf-8")
    encoder = client.Client(folder / "model.onnx")
    want = model.predict_on_batch(encoder.tensors(texts)[0])
    labels = [("negative", "positive")[i] for i in want.argmax(-1)]
    lines = run_client(folder, ".", texts[0], f"@{folder / 'texts.txt'}", "--threads", "1")
    assert lines == [f"{label}\t{p.max():.4f}\t{text}" for label, p, text in zip(labels, want, texts)]
    lines = run_client(folder, "model.onnx", *texts, "--json")
    records = [json.loads(line) for line in lines]
    assert [r["input"] for r in records] == texts and [r["label"] for r in records] == labels
    np.testing.assert_allclose([r["probabilities"] for r in records], want, atol=1e-5)


def test_client_predict_and_tensors(text_export):
    folder, model = text_export
    one = client.Client(folder)
    assert one.model_path.endswith("model.tflite") and one.class_names == ["negative", "positive"]
    (ids,) = one.tensors(["Good film, isn't it? <br />GREAT"])
    np.testing.assert_array_equal(ids, [[2, 4, 1, 5, 1, 6]])  # is, it: out of vocabulary
    assert ids.dtype == np.int32
    (label, p, probs), = one.predict("good film")
    np.testing.assert_allclose(probs, model.predict_on_batch(one.tensors(["good film"])[0])[0], atol=1e-5)
    assert label == one.class_names[int(np.argmax(probs))] and p == pytest.approx(probs.max())


def test_client_fails_with_one_line(tmp_path, text_export):
    folder, _ = text_export
    with pytest.raises(ValueError, match="holds no .tflite or .onnx file"):
        client.Client(tmp_path)
    result = subprocess.run([sys.executable, str(folder / "client.py"), str(tmp_path), "x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
