"""Malformed inputs to every project, one table: a clear line, a non-zero exit, nothing half-written.

Each row builds its bad input in `tmp_path` and runs the CLI in-process
(`tf_finetune.cli.main`). A row that must fail expects exit status 2, exactly one `error:`
line on stderr holding the row's fragments (what was wrong, where, what to do), no
traceback, and nothing written or changed under `tmp_path` (no run directory, no export
version: `train` rejects its input before it writes anything). The NaN row is the one that
fails during training: it may leave its run directory, but no best model, report or export.
A row whose unreadable files sit among good ones expects the run to succeed, skip them and
report how many; grayscale, CMYK, 16-bit and large images are valid and are used.
"""

import dataclasses
import importlib
import io
import json
import os
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest

from tests.conftest import MINILM
from tests.conftest import MINILM_PARTS
from tests.conftest import require_data
from tests.conftest import shared_data_dir
from tests.conftest import write_image
from tests.helpers import assert_one_line_error
from tests.helpers import call_cli
from tests.helpers import error_lines
# Seconds-long image runs: the seed CNN at 32 px, one epoch, no fine-tuning phase.
TINY_IMAGES = ["--smoke", "--backbone", "seed_cnn", "--image-size", "32", "--epochs", "1",
               "--fine-tune-epochs", "0", "--batch-size", "4"]
COLORS = {"blue": (20, 20, 220), "red": (220, 20, 20)}
PER_CLASS = 4  # good images per class


def project(name):
    return importlib.import_module(f"projects.{name}.project").PROJECT


# --- what the rows build ----------------------------------------------------------


class Ctx:
    """Paths of one row: `tmp`, the run and export folders the commands are given."""

    def __init__(self, tmp_path, request):
        self.tmp = tmp_path
        self.run = str(tmp_path / "run")
        self.exports = str(tmp_path / "exports")
        self._request = request

    def path(self, *parts):
        return str(self.tmp.joinpath(*parts))

    def write(self, name, content):
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    def images(self, name="data", per_class=PER_CLASS):
        """NAME/blue/, NAME/red/: `per_class` small solid-colour JPEGs each."""
        for cls, color in COLORS.items():
            for i in range(per_class):
                write_image(self.path(name, cls, f"{i}.jpg"), size=(24, 24), color=color)
        return self.path(name)

    def fake_run(self, name, project_name):
        """A folder that looks like `project_name`'s run (run.json, config.json)."""
        self.write(f"{name}/run.json", json.dumps({"project": project_name, "class_names": ["a", "b"]}))
        self.write(f"{name}/config.json", "{}")
        return self.path(name)

    def read_only_dir(self, name):
        """A folder nobody can write to; as root (who ignores permissions) an immutable one."""
        path = self.path(name)
        os.makedirs(path)
        os.chmod(path, 0o555)
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(
                    ["chattr", "+i", path], capture_output=True).returncode:
                pytest.skip("root ignores permissions and chattr +i is unavailable here")
            self._request.addfinalizer(lambda: subprocess.run(["chattr", "-i", path]))
        return path


def zero_byte(path):
    open(path, "wb").close()


def corrupt_jpeg(path):
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0" + b"\x00" * 100)


def grayscale_png(path):
    import tensorflow as tf

    with open(path, "wb") as f:
        f.write(tf.io.encode_png(np.full((24, 24, 1), 90, np.uint8)).numpy())


def png_16_bit(path, value=50000):
    import tensorflow as tf

    with open(path, "wb") as f:
        f.write(tf.io.encode_png(np.full((24, 24, 3), value, np.uint16)).numpy())


def cmyk_jpeg(path):
    image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image.new("CMYK", (24, 24), (0, 230, 230, 20)).save(buffer, "JPEG")
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def large_jpeg(path):
    """A valid 4000x3000 photo-sized JPEG (small on disk: one colour)."""
    write_image(path, size=(3000, 4000), color=(220, 20, 20))


def jpeg_claiming_40000_px(path):
    """A JPEG whose header claims 40000x40000 pixels (4.8 GB decoded): a decompression bomb."""
    import tensorflow as tf

    data = bytearray(tf.io.encode_jpeg(np.full((16, 16, 3), 200, np.uint8)).numpy())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 40000, 40000)
    with open(path, "wb") as f:
        f.write(bytes(data))


def png_claiming_100000_px(path):
    """A PNG whose (checksummed) header claims 100000x100000 pixels."""
    import tensorflow as tf

    data = bytearray(tf.io.encode_png(np.full((16, 16, 3), 200, np.uint8)).numpy())
    struct.pack_into(">II", data, 16, 100000, 100000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    with open(path, "wb") as f:
        f.write(bytes(data))


def sentiment_csv(rows=12):
    return "text,label\n" + "".join(f"a fine film {i},pos\na dull film {i},neg\n" for i in range(rows))


def sst2_tsv(rows=12):
    return "sentence\tlabel\n" + "".join(f"a fine film {i}\t1\na dull film {i}\t0\n" for i in range(rows))


def pairs(n=40):
    return "".join(f"Tom has {i} books.\t汤姆有{i}本书。\tCC-BY 2.0\n" for i in range(n))


# --- the rows -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Trains:
    """The run succeeds and records these skipped-file counts and per-class image counts."""

    skipped: dict
    class_counts: dict


@dataclasses.dataclass(frozen=True)
class FailsInTraining:
    """The error line comes once training has started: the run directory exists, but it holds
    no best model and no report, and nothing is exported."""

    fragments: list


# plant_cnn


def plant_empty_folder(c):
    os.makedirs(c.path("empty"))
    return ["train", "--data-dir", c.path("empty"), "--output-dir", c.run, *TINY_IMAGES]


def plant_single_class(c):
    for i in range(3):
        write_image(c.path("one", "only", f"{i}.jpg"))
    return ["train", "--data-dir", c.path("one"), "--output-dir", c.run, *TINY_IMAGES]


def plant_only_stray_files(c):
    for cls in COLORS:
        c.write(f"data/{cls}/notes.txt", "not an image")
        c.write(f"data/{cls}/labels.csv", "a,b\n")
    return ["train", "--data-dir", c.path("data"), "--output-dir", c.run, *TINY_IMAGES]


def plant_only_unreadable_images(c):
    for cls in COLORS:
        os.makedirs(c.path("data", cls))
        zero_byte(c.path("data", cls, "empty.jpg"))
        corrupt_jpeg(c.path("data", cls, "broken.jpg"))
    return ["train", "--data-dir", c.path("data"), "--output-dir", c.run, *TINY_IMAGES]


def plant_other_class_unreadable(c):
    os.makedirs(c.path("data", "red"))
    for i in range(3):
        write_image(c.path("data", "blue", f"{i}.jpg"))
        zero_byte(c.path("data", "red", f"{i}.jpg"))
    return ["train", "--data-dir", c.path("data"), "--output-dir", c.run, *TINY_IMAGES]


def plant_unreadable_and_stray_files_among_good(c):
    root = c.images()
    zero_byte(os.path.join(root, "red", "zero.jpg"))
    corrupt_jpeg(os.path.join(root, "blue", "corrupt.jpg"))
    with open(write_image(c.path("whole.png"), size=(24, 24)), "rb") as f:
        c.write("data/red/truncated.png", f.read()[:60])
    c.write("data/red/notes.txt", "not an image")
    c.write("data/blue/Thumbs.db", b"\x00\x01")
    c.write("data/README.md", "top-level files are not classes")
    return ["train", "--data-dir", root, "--output-dir", c.run, *TINY_IMAGES]


def plant_odd_but_valid_and_oversized_images_among_good(c):
    root = c.images()
    grayscale_png(os.path.join(root, "blue", "gray.png"))  # valid: used
    cmyk_jpeg(os.path.join(root, "red", "cmyk.jpg"))
    png_16_bit(os.path.join(root, "red", "deep.png"))
    large_jpeg(os.path.join(root, "red", "large.jpg"))
    jpeg_claiming_40000_px(os.path.join(root, "blue", "bomb.jpg"))  # declares more pixels than --max-image-pixels: skipped unread
    png_claiming_100000_px(os.path.join(root, "red", "bomb.png"))
    return ["train", "--data-dir", root, "--output-dir", c.run, *TINY_IMAGES]


def plant_missing_weights_file(c):
    return ["train", "--data-dir", c.images(), "--output-dir", c.run, *TINY_IMAGES,
            "--backbone", "mobilenet_v2", "--weights", c.path("nope.h5")]


def plant_zero_byte_weights_file(c):
    zero_byte(c.path("empty.h5"))
    return ["train", "--data-dir", c.images(), "--output-dir", c.run, *TINY_IMAGES,
            "--backbone", "mobilenet_v2", "--weights", c.path("empty.h5")]


def plant_export_dir_is_a_file(c):
    c.write("exports", "a file")
    return ["train", "--data-dir", c.images(), "--output-dir", c.run, "--export-dir", c.exports, *TINY_IMAGES]


def plant_export_dir_inside_a_file(c):
    c.write("exports", "a file")
    return ["train", "--data-dir", c.images(), "--output-dir", c.run,
            "--export-dir", os.path.join(c.exports, "plant_cnn"), *TINY_IMAGES]


def plant_export_dir_read_only(c):
    c.read_only_dir("exports")
    return ["train", "--data-dir", c.images(), "--output-dir", c.run, "--export-dir", c.exports, *TINY_IMAGES]


def plant_output_dir_inside_a_file(c):
    c.write("runs", "a file")
    return ["train", "--data-dir", c.images(), "--output-dir", c.path("runs", "r1"), *TINY_IMAGES]


def plant_evaluate_sentiment_run(c):
    return ["evaluate", "--run-dir", c.fake_run("other", "sentiment_lstm")]


def plant_class_weight_of_unknown_class(c):
    return ["train", "--data-dir", c.images(), "--output-dir", c.run, *TINY_IMAGES, "--class-weight", "purple=2"]


def plant_class_weight_malformed(c):
    return ["train", "--data-dir", c.images(), "--output-dir", c.run, *TINY_IMAGES, "--class-weight", "heavy"]


def plant_predict_zero_byte_image(c):
    write_image(c.path("good.jpg"))
    zero_byte(c.path("leaf.jpg"))
    # A model file that exists (predict checks --model first): the inputs fail before it is read.
    return ["predict", "--model", c.write("model.tflite", ""), c.path("good.jpg"), c.path("leaf.jpg")]


def plant_nan_loss(c):
    return ["train", "--data-dir", c.images(), "--output-dir", c.run, "--export-dir", c.exports,
            *TINY_IMAGES, "--learning-rate", "1e30"]


# sentiment_lstm


def sentiment_non_utf8_csv(c):
    text = sentiment_csv().replace("film", "café")
    return ["train", "--data-dir", c.write("reviews.csv", text.encode("latin-1")),
            "--output-dir", c.run, "--smoke"]


def sentiment_non_utf8_header(c):
    text = "texte,étiquette\n" + "".join(f"un film {i},{i % 2}\n" for i in range(10))
    return ["train", "--data-dir", c.write("critiques.csv", text.encode("latin-1")),
            "--output-dir", c.run, "--smoke"]


def sentiment_zero_byte_csv(c):
    return ["train", "--data-dir", c.write("reviews.csv", b""), "--output-dir", c.run, "--smoke"]


def sentiment_empty_texts(c):
    text = "text,label\n" + "a fine film,pos\n" + '"   ",neg\n,pos\n' * 6
    return ["train", "--data-dir", c.write("reviews.csv", text), "--output-dir", c.run, "--smoke"]


def sentiment_missing_labels(c):
    text = "text,label\nfine,pos\ndull,neg\n" + "".join(f"film {i},\nfilm {i} again\n" for i in range(4))
    return ["train", "--data-dir", c.write("reviews.csv", text), "--output-dir", c.run, "--smoke"]


def sentiment_unknown_labels_in_dev(c):
    c.write("data/train.csv", sentiment_csv())
    c.write("data/dev.csv", "text,label\n" + "".join(f"film {i},neutral\n" for i in range(6)))
    return ["train", "--data-dir", c.path("data"), "--output-dir", c.run, "--smoke"]


def sentiment_wrong_columns(c):
    text = "id,body,stars\n" + "".join(f"{i},film {i},{i % 5}\n" for i in range(10))
    return ["train", "--data-dir", c.write("reviews.csv", text), "--output-dir", c.run, "--smoke"]


def sentiment_output_dir_of_plant_run(c):
    return ["train", "--data-dir", c.write("reviews.csv", sentiment_csv()),
            "--output-dir", c.fake_run("run", "plant_cnn"), "--smoke"]


def sentiment_init_from_plant_run(c):
    return ["train", "--data-dir", c.write("reviews.csv", sentiment_csv()), "--output-dir", c.run,
            "--smoke", "--init-from", c.fake_run("plant", "plant_cnn")]


def sentiment_predict_empty_text_file(c):
    return ["predict", "--model", c.write("model.tflite", ""), "@" + c.write("texts.txt", "\n  \n")]


# bert_classifier


def bert_missing_preset(c):
    return ["train", "--data-dir", c.write("sst.tsv", sst2_tsv()), "--output-dir", c.run, "--smoke",
            "--preset", c.path("no-such-preset")]


def bert_zero_byte_preset_weights(c):
    require_data(*MINILM_PARTS)
    os.makedirs(c.path("preset"))
    for name in ("config.json", "vocab.txt"):
        shutil.copy(os.path.join(MINILM, name), c.path("preset", name))
    zero_byte(c.path("preset", "model.safetensors"))
    return ["train", "--data-dir", c.write("sst.tsv", sst2_tsv()), "--output-dir", c.run, "--smoke",
            "--preset", c.path("preset")]


def bert_unknown_labels(c):
    text = sst2_tsv().replace("\t1\n", "\tgood\n").replace("\t0\n", "\tbad\n")
    return ["train", "--data-dir", c.write("sst.tsv", text), "--output-dir", c.run, "--smoke",
            "--preset", MINILM, "--class-names", "negative", "positive"]


def bert_non_utf8_tsv(c):
    text = sst2_tsv().replace("film", "ça")
    return ["train", "--data-dir", c.write("sst.tsv", text.encode("cp1252")), "--output-dir", c.run,
            "--smoke", "--preset", MINILM]


def bert_photo_as_table(c):
    return ["train", "--data-dir", write_image(c.path("photo.jpg")), "--output-dir", c.run,
            "--smoke", "--preset", MINILM]


def bert_export_dir_read_only(c):
    c.read_only_dir("exports")
    return ["train", "--data-dir", c.write("sst.tsv", sst2_tsv()), "--output-dir", c.run, "--smoke",
            "--preset", MINILM, "--export-dir", c.exports]


# translation


def translation_non_utf8_pairs(c):
    return ["train", "--data-dir", c.write("cmn.txt", pairs().encode("gb18030")), "--output-dir", c.run,
            "--smoke"]


def translation_zero_byte_pairs(c):
    return ["train", "--data-dir", c.write("cmn.txt", b""), "--output-dir", c.run, "--smoke"]


def translation_csv_instead_of_tabs(c):
    text = "english,chinese\n" + pairs().replace("\t", ",")
    return ["train", "--data-dir", c.write("cmn.csv", text), "--output-dir", c.run, "--smoke"]


def translation_folder_without_cmn_txt(c):
    c.write("data/pairs.tsv", pairs())
    return ["train", "--data-dir", c.path("data"), "--output-dir", c.run, "--smoke"]


def translation_export_dir_is_a_file(c):
    c.write("exports", "a file")
    return ["train", "--data-dir", c.write("cmn.txt", pairs()), "--output-dir", c.run, "--smoke",
            "--export-dir", c.exports]


def translation_output_dir_read_only(c):
    c.read_only_dir("runs")
    return ["train", "--data-dir", c.write("cmn.txt", pairs()), "--output-dir", c.path("runs", "r1"),
            "--smoke"]


def translation_class_weight(c):
    return ["train", "--data-dir", c.write("cmn.txt", pairs()), "--output-dir", c.run, "--smoke",
            "--class-weight", "balanced"]


def translation_predict_with_plant_run(c):
    return ["predict", "--model", c.fake_run("plant", "plant_cnn"), "I love you."]


CASES = [
    # id, project, build, then what to expect: the fragments of the one error line ({tmp}: the
    # row's tmp_path), FailsInTraining(fragments), or Trains(...) when the bad files sit among
    # good ones.
    ("plant-empty-folder", "plant_cnn", plant_empty_folder,
     ["Data folder {tmp}/empty has no class subfolders", "expected one subfolder per class"]),
    ("plant-single-class-folder", "plant_cnn", plant_single_class,
     ["Data folder {tmp}/one has images for one class only ('only')", "at least two class subfolders"]),
    ("plant-only-stray-non-image-files", "plant_cnn", plant_only_stray_files,
     ["Data folder {tmp}/data has no readable images", "4 not an image file", ".jpg"]),
    ("plant-only-zero-byte-and-corrupt-images", "plant_cnn", plant_only_unreadable_images,
     ["Data folder {tmp}/data has no readable images", "4 unreadable", ".jpg"]),
    ("plant-second-class-all-zero-byte", "plant_cnn", plant_other_class_unreadable,
     ["Data folder {tmp}/data has images for one class only ('blue'; none readable in red; "
      "skipped 3 unreadable)", "at least two class subfolders"]),
    ("plant-zero-byte-corrupt-truncated-and-stray-files-among-good", "plant_cnn",
     plant_unreadable_and_stray_files_among_good,
     Trains({"not an image file": 2, "unreadable": 3}, {"blue": PER_CLASS, "red": PER_CLASS})),
    ("plant-grayscale-cmyk-16bit-4000px-used-40000px-skipped-among-good", "plant_cnn",
     plant_odd_but_valid_and_oversized_images_among_good,
     Trains({"too large": 2}, {"blue": PER_CLASS + 1, "red": PER_CLASS + 3})),
    ("plant-missing-weights-file", "plant_cnn", plant_missing_weights_file,
     ["--weights {tmp}/nope.h5 does not exist", "pass imagenet, none, or the path of a .h5"]),
    ("plant-zero-byte-weights-file", "plant_cnn", plant_zero_byte_weights_file,
     ["--weights {tmp}/empty.h5 could not be loaded into MobileNetV2", "Pass weights saved from"]),
    ("plant-export-dir-is-a-file", "plant_cnn", plant_export_dir_is_a_file,
     ["--export-dir {tmp}/exports is a file", "pass a folder"]),
    ("plant-export-dir-inside-a-file", "plant_cnn", plant_export_dir_inside_a_file,
     ["--export-dir {tmp}/exports/plant_cnn is inside {tmp}/exports, which is a file", "pass a folder"]),
    ("plant-export-dir-read-only", "plant_cnn", plant_export_dir_read_only,
     ["--export-dir {tmp}/exports is not writable", "pass a folder you can write to"]),
    ("plant-output-dir-inside-a-file", "plant_cnn", plant_output_dir_inside_a_file,
     ["--output-dir {tmp}/runs/r1 is inside {tmp}/runs, which is a file", "pass a folder"]),
    ("plant-evaluate-run-dir-of-sentiment", "plant_cnn", plant_evaluate_sentiment_run,
     ["--run-dir {tmp}/other holds a 'sentiment_lstm' run, not 'plant_cnn'", "pass a plant_cnn run"]),
    ("plant-class-weight-of-unknown-class", "plant_cnn", plant_class_weight_of_unknown_class,
     ["--class-weight purple=2: no class named 'purple'", "the classes are blue, red"]),
    ("plant-class-weight-malformed", "plant_cnn", plant_class_weight_malformed,
     ["--class-weight 'heavy'", "expected none, balanced, or NAME=WEIGHT pairs"]),
    ("plant-predict-zero-byte-image", "plant_cnn", plant_predict_zero_byte_image,
     ["INPUT {tmp}/leaf.jpg is not a readable image", "pass JPEG, PNG, BMP or GIF"]),
    ("plant-nan-loss", "plant_cnn", plant_nan_loss,
     FailsInTraining(["Training loss became nan in stage 1 (head)", "lower its learning rate (--learning-rate"])),
    ("sentiment-non-utf8-csv", "sentiment_lstm", sentiment_non_utf8_csv,
     ["{tmp}/reviews.csv: 24 of 24 rows are unusable (undecodable bytes: 24)", "save the file as UTF-8"]),
    ("sentiment-non-utf8-header", "sentiment_lstm", sentiment_non_utf8_header,
     ["{tmp}/critiques.csv: its header line is not UTF-8 text", "pass a CSV/TSV table saved as UTF-8"]),
    ("sentiment-zero-byte-csv", "sentiment_lstm", sentiment_zero_byte_csv,
     ["{tmp}/reviews.csv is empty", "expected a header line"]),
    ("sentiment-empty-texts", "sentiment_lstm", sentiment_empty_texts,
     ["{tmp}/reviews.csv: 12 of 13 rows are unusable (empty text: 12)", "--text-column"]),
    ("sentiment-missing-labels", "sentiment_lstm", sentiment_missing_labels,
     ["{tmp}/reviews.csv: 8 of 10 rows are unusable (missing label: 8)", "--label-column"]),
    ("sentiment-unknown-labels-in-dev", "sentiment_lstm", sentiment_unknown_labels_in_dev,
     ["{tmp}/data/dev.csv: 6 of 6 rows are unusable (unknown label: 6)", "one of the classes neg, pos",
      "--class-names"]),
    ("sentiment-csv-with-wrong-columns", "sentiment_lstm", sentiment_wrong_columns,
     ["{tmp}/reviews.csv has none of the usual text columns", "(columns: id, body, stars)",
      "pass --text-column NAME"]),
    ("sentiment-output-dir-of-plant-run", "sentiment_lstm", sentiment_output_dir_of_plant_run,
     ["--output-dir {tmp}/run holds a 'plant_cnn' run, not 'sentiment_lstm'", "pass a new folder"]),
    ("sentiment-init-from-plant-run", "sentiment_lstm", sentiment_init_from_plant_run,
     ["--init-from {tmp}/plant holds a 'plant_cnn' run, not 'sentiment_lstm'", "pass a sentiment_lstm run"]),
    ("sentiment-predict-empty-text-file", "sentiment_lstm", sentiment_predict_empty_text_file,
     ["INPUT: no texts given", "pass texts, or @FILE"]),
    ("bert-missing-preset-folder", "bert_classifier", bert_missing_preset,
     ["--preset {tmp}/no-such-preset is not a folder", "Hugging Face BERT folder"]),
    ("bert-zero-byte-preset-weights", "bert_classifier", bert_zero_byte_preset_weights,
     ["--preset {tmp}/preset could not be loaded", "Hugging Face BERT folder"]),
    ("bert-unknown-labels", "bert_classifier", bert_unknown_labels,
     ["{tmp}/sst.tsv: 24 of 24 rows are unusable (unknown label: 24)",
      "one of the classes negative, positive", "--class-names"]),
    ("bert-non-utf8-tsv", "bert_classifier", bert_non_utf8_tsv,
     ["{tmp}/sst.tsv: 24 of 24 rows are unusable (undecodable bytes: 24)", "save the file as UTF-8"]),
    ("bert-jpeg-as-table", "bert_classifier", bert_photo_as_table,
     ["{tmp}/photo.jpg: its header line is not UTF-8 text", "pass a CSV/TSV table saved as UTF-8"]),
    ("bert-export-dir-read-only", "bert_classifier", bert_export_dir_read_only,
     ["--export-dir {tmp}/exports is not writable", "pass a folder you can write to"]),
    ("translation-non-utf8-pairs", "translation", translation_non_utf8_pairs,
     ["{tmp}/cmn.txt: not UTF-8 text", "save it as UTF-8"]),
    ("translation-zero-byte-pairs", "translation", translation_zero_byte_pairs,
     ["{tmp}/cmn.txt: no English<TAB>Chinese lines found (it is empty)",
      "pass a UTF-8 file of English<TAB>Chinese lines"]),
    ("translation-csv-instead-of-tabs", "translation", translation_csv_instead_of_tabs,
     ["{tmp}/cmn.csv: no English<TAB>Chinese lines found (41 lines without a tab-separated "
      "English and Chinese sentence, e.g. line 1: 'english,chinese')",
      "pass a UTF-8 file of English<TAB>Chinese lines"]),
    ("translation-folder-without-cmn-txt", "translation", translation_folder_without_cmn_txt,
     ["--data-dir {tmp}/data has no cmn.txt", "pass a folder with cmn.txt"]),
    ("translation-export-dir-is-a-file", "translation", translation_export_dir_is_a_file,
     ["--export-dir {tmp}/exports is a file", "pass a folder"]),
    ("translation-output-dir-read-only", "translation", translation_output_dir_read_only,
     ["--output-dir {tmp}/runs/r1 is not writable", "pass a folder you can write to"]),
    ("translation-class-weight", "translation", translation_class_weight,
     ["--class-weight balanced: this project's model has no classes to weight", "leave --class-weight at none"]),
    ("translation-predict-with-plant-run", "translation", translation_predict_with_plant_run,
     ["--model {tmp}/plant holds a 'plant_cnn' run, not 'translation'"]),
]


def _params():
    for case_id, project_name, build, expected in CASES:
        yield pytest.param(project_name, build, expected, id=case_id)


def _tree(root):
    """{relative path: (size, mtime)} of everything under `root`, to see what a run changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_size if name in filenames else 0, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("project_name, build, expected", list(_params()))
def test_bad_input(project_name, build, expected, tmp_path, request, capfd, monkeypatch):
    monkeypatch.setenv("TF_FINETUNE_DATA", shared_data_dir())
    monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
    c = Ctx(tmp_path, request)
    argv = build(c)
    before = _tree(tmp_path)

    result = call_cli(project(project_name), argv, capfd)

    if isinstance(expected, Trains):
        assert result.status == 0, result.err[-3000:]
        assert "Traceback" not in result.out + result.err and not error_lines(result.err)
        with open(os.path.join(c.run, "run.json"), encoding="utf-8") as f:
            data = json.load(f)["data"]
        assert data["skipped"] == expected.skipped
        assert data["class_counts"] == expected.class_counts
        assert os.path.isfile(os.path.join(c.run, "checkpoints", "best.keras"))
        for reason, count in expected.skipped.items():  # and the log says so
            assert f"{count} {reason}" in result.err, result.err[-3000:]
        return

    fragments = getattr(expected, "fragments", expected)
    assert_one_line_error(result, *(fragment.format(tmp=tmp_path) for fragment in fragments))
    if isinstance(expected, FailsInTraining):
        assert not os.path.exists(os.path.join(c.run, "checkpoints", "best.keras"))
        assert not os.path.exists(os.path.join(c.run, "metrics.json"))
        assert not os.path.isdir(c.exports) or not os.listdir(c.exports)
    else:  # rejected before anything was written
        assert _tree(tmp_path) == before, "the failed command wrote or changed files"
