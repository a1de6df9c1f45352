"""Images whose header declares too many pixels are refused before they are decoded (issue 21).

The header parser (`tf_finetune.data.image_header`) and its in-graph twin
(`image_folder.declared_size`) read the same sizes from PNG, JPEG (baseline, progressive),
GIF, BMP and WebP. An image over `--max-image-pixels` is skipped and counted by the folder
scan, one line from `read_inputs`/`predict`, and an `InvalidArgumentError` naming the limit
inside the serving graph, all without decoding it: a real decompression bomb costs neither
time nor memory.
"""

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import tensorflow as tf

from projects.plant_cnn import data as plant_data
from projects.plant_cnn.config import PlantConfig
from tests.conftest import REPO
from tests.conftest import write_image
from tests.helpers import assert_one_line_error
from tests.helpers import run_cli
from tf_finetune import config as config_lib
from tf_finetune.data import image_folder
from tf_finetune.data import image_header
from tf_finetune.errors import UserError

SIZE = (37, 23)  # (width, height) of the small test images: not square, to catch a swap
BIG = (20000, 20000)
LIMIT = image_header.DEFAULT_MAX_PIXELS
BIG_LINE = ("declares 20000x20000 = 400.0 megapixels, over --max-image-pixels 40000000: resize it, "
            "or raise the limit.")


# --- encoded images, and the same with a patched header ---------------------------------------


def pixels(width, height, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pil_bytes(fmt, size=SIZE, **kwargs):
    image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image.fromarray(pixels(*size)).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_bytes(size=SIZE):
    return tf.io.encode_png(pixels(*size)).numpy()


def jpeg_bytes(size=SIZE):
    return tf.io.encode_jpeg(pixels(*size)).numpy()


def bmp_core_header(size=SIZE):
    """A 24-bit BMP with the old 12-byte BITMAPCOREHEADER (16-bit width and height)."""
    width, height = size
    row = (width * 3 + 3) // 4 * 4
    header = struct.pack("<IHHHH", 12, width, height, 1, 24)
    return (b"BM" + struct.pack("<IHHI", 26 + row * height, 0, 0, 26) + header
            + bytes(row * height))


def with_size(data, fmt, width, height):
    """`data` with its header patched to declare `width` x `height` (checksums kept valid)."""
    data = bytearray(data)
    if fmt == "png":
        struct.pack_into(">II", data, 16, width, height)
        struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # IHDR's CRC
    elif fmt == "jpeg":
        sof = min(i for i in (data.find(b"\xff\xc0"), data.find(b"\xff\xc2")) if i >= 0)
        struct.pack_into(">HH", data, sof + 5, height, width)
    elif fmt == "gif":
        struct.pack_into("<HH", data, 6, width, height)
    elif fmt == "bmp":
        struct.pack_into("<ii", data, 18, width, height)
    elif fmt == "webp":  # lossless (VP8L): 14 bits each, minus one, after the 0x2F signature
        (bits,) = struct.unpack_from("<I", data, 21)
        struct.pack_into("<I", data, 21, bits & ~0x0FFFFFFF | (width - 1) | (height - 1) << 14)
    else:
        raise AssertionError(fmt)
    return bytes(data)


def big_png():
    """A valid PNG signature and IHDR declaring 20000x20000, with a 37x23 image's IDAT."""
    return with_size(png_bytes(), "png", *BIG)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


ENCODERS = {
    "png": png_bytes,
    "jpeg": jpeg_bytes,
    "jpeg-progressive": lambda: pil_bytes("JPEG", progressive=True),
    "jpeg-cmyk": lambda: _pil_cmyk_jpeg(),
    "gif": lambda: pil_bytes("GIF"),
    "bmp": lambda: pil_bytes("BMP"),
    "bmp-top-down": lambda: with_size(pil_bytes("BMP"), "bmp", SIZE[0], -SIZE[1]),
    "bmp-core-header": bmp_core_header,
    "webp-lossy": lambda: pil_bytes("WEBP"),
    "webp-lossless": lambda: pil_bytes("WEBP", lossless=True),
    "webp-extended": lambda: pil_bytes("WEBP", exif=b"Exif\x00\x00" + bytes(16)),
}


def _pil_cmyk_jpeg():
    image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image.new("CMYK", SIZE, (0, 230, 230, 20)).save(buffer, "JPEG")
    return buffer.getvalue()


# --- the header parser -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_header_size_in_python_and_in_graph_is_the_decoded_size(kind):
    data = ENCODERS[kind]()
    assert image_header.image_size(data) == SIZE
    assert [int(v) for v in image_folder.declared_size(tf.constant(data))] == list(SIZE)
    if kind != "bmp-core-header":  # TensorFlow decodes every other one
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        assert image.shape == (SIZE[1], SIZE[0], 3)


@pytest.mark.parametrize("fmt, make", [
    ("png", png_bytes), ("jpeg", jpeg_bytes), ("jpeg", lambda: pil_bytes("JPEG", progressive=True)),
    ("gif", lambda: pil_bytes("GIF")), ("bmp", lambda: pil_bytes("BMP")),
    ("webp", lambda: pil_bytes("WEBP", lossless=True)),
])
def test_patched_header_reports_the_declared_size(fmt, make):
    big = with_size(make(), fmt, 9000, 7000)
    assert image_header.image_size(big) == (9000, 7000)
    assert [int(v) for v in image_folder.declared_size(tf.constant(big))] == [9000, 7000]


def test_crafted_20000_px_png_is_a_valid_header():
    data = big_png()
    assert data.startswith(image_header.PNG_SIGNATURE) and data[12:16] == b"IHDR"
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])
    assert image_header.image_size(data) == BIG


@pytest.mark.parametrize("data, in_graph", [
    (b"", True), (b"hello world", True), (b"RIFF\x00\x00\x00\x00WEBPVP8Z", True),
    # A known signature cut short: the graph reads zeros past the end (and the decoder fails).
    (b"\x89PNG\r\n\x1a\n", False), (b"GIF89a\x01", False), (b"BM\x00", False),
    # JPEGs without a frame header: the graph's extract_jpeg_shape fails on them, as decoding would.
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", False), (b"\xff\xd8\xff\xd9", False),
    (b"\xff\xd8\xff\xe0\x00\x01", False),  # a segment length below 2
])
def test_what_cannot_be_parsed_is_none(data, in_graph):
    assert image_header.image_size(data) is None
    if in_graph:
        assert [int(v) for v in image_folder.declared_size(tf.constant(data))] == [0, 0]


def test_truncated_png_header_is_none():
    assert image_header.image_size(png_bytes()[:20]) is None


def test_file_header_reads_only_the_first_bytes(tmp_path, monkeypatch):
    # A PNG followed by 1 MB of padding: the size comes from the first chunk alone.
    path = write(tmp_path / "padded.png", big_png() + bytes(1 << 20))
    read = []

    class Counting(io.FileIO):
        def read(self, n=-1):
            out = super().read(n)
            read.append(len(out))
            return out

    monkeypatch.setattr(image_header, "open", lambda p, mode: Counting(p, mode), raising=False)
    assert image_header.file_image_size(path) == BIG
    assert sum(read) <= image_header.HEADER_BYTES


def test_jpeg_frame_header_after_large_metadata_is_found(tmp_path):
    # A 200 KB ICC profile (several APP2 segments) puts the frame header past the first chunk.
    data = with_size(pil_bytes("JPEG", icc_profile=bytes(200_000)), "jpeg", *BIG)
    assert data.find(b"\xff\xc0") > image_header.HEADER_BYTES
    path = write(tmp_path / "icc.jpg", data)
    assert image_header.file_image_size(path) == BIG
    assert image_header.file_image_size(path, chunk_size=100) == BIG
    # Cut before its frame header, it has no size (decoding will report it unreadable).
    cut = write(tmp_path / "cut.jpg", data[:100_000])
    assert image_header.file_image_size(cut) is None


def test_check_pixels_is_one_line_naming_file_size_limit_and_flag():
    with pytest.raises(UserError) as info:
        image_header.check_pixels(big_png(), LIMIT, "INPUT big.png")
    assert str(info.value) == f"INPUT big.png {BIG_LINE}"
    assert image_header.check_pixels(big_png(), 0, "INPUT big.png") == BIG  # 0 = no limit
    assert image_header.check_pixels(png_bytes(), SIZE[0] * SIZE[1], "x") == SIZE  # at the limit
    with pytest.raises(UserError, match="over --max-image-pixels 850:"):
        image_header.check_pixels(png_bytes(), SIZE[0] * SIZE[1] - 1, "x")


# --- the config ----------------------------------------------------------------------------------


def test_max_image_pixels_flag_default_and_check(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    config_lib.add_config_flags(parser, PlantConfig)
    args = parser.parse_args(["--max-image-pixels", "0"])
    assert config_lib.overrides_from_args(PlantConfig, args) == {"max_image_pixels": 0}
    assert PlantConfig().max_image_pixels == LIMIT
    with pytest.raises(UserError, match=r"^--max-image-pixels must be >= 0 \(0 = no limit\). "
                                        r"Received: max_image_pixels=-1$"):
        PlantConfig(max_image_pixels=-1)
    # A run written before the setting existed reads back with the default.
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": 2}))
    assert config_lib.load_run_config(PlantConfig, str(path)).max_image_pixels == LIMIT


# --- predict's inputs ------------------------------------------------------------------------------


def test_read_inputs_rejects_the_big_png_before_decoding_anything(tmp_path, monkeypatch):
    good = write_image(str(tmp_path / "good.jpg"))
    big = write(tmp_path / "big.png", big_png())

    def decodes(paths, **kwargs):
        raise AssertionError(f"decoded {paths} before checking their headers")

    monkeypatch.setattr(image_folder, "find_unreadable", decodes)
    with pytest.raises(UserError) as info:
        plant_data.read_inputs([good, big])
    assert str(info.value) == f"INPUT {big} {BIG_LINE}"
    with pytest.raises(UserError, match="over --max-image-pixels 1000:"):
        plant_data.read_inputs([good], max_pixels=1000)  # 32x32 = 1024


def test_read_inputs_passes_images_within_the_limit(tmp_path):
    good = write_image(str(tmp_path / "good.jpg"), size=(30, 40))
    with open(good, "rb") as f:
        expected = f.read()
    assert plant_data.read_inputs([good], max_pixels=1200) == [expected]
    assert plant_data.read_inputs([good], max_pixels=0) == [expected]


# --- the training folder scan ------------------------------------------------------------------


def test_scan_skips_and_counts_images_over_the_limit_without_decoding_them(
        image_folder_factory, monkeypatch, caplog):
    root = image_folder_factory(per_class=3)
    big = write(os.path.join(root, "a", "big.png"), big_png())
    write(os.path.join(root, "b", "big.jpg"), with_size(jpeg_bytes(), "jpeg", 40000, 40000))
    with open(os.path.join(root, "b", "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    decoded = []
    find_unreadable = image_folder.find_unreadable
    monkeypatch.setattr(image_folder, "find_unreadable",
                        lambda paths, **kw: decoded.extend(paths) or find_unreadable(paths, **kw))
    with caplog.at_level("WARNING", logger=image_folder.__name__):
        folder = image_folder.scan(root)
    assert folder.skipped == {"too large": 2, "unreadable": 1}
    assert folder.class_counts() == [3, 3] and big not in folder.files
    assert not [p for p in decoded if "big" in p]
    warning = [r.getMessage() for r in caplog.records if "declare more than" in r.getMessage()]
    assert len(warning) == 1 and "--max-image-pixels" in warning[0] and "a/big.png" in warning[0]


def test_scan_limit_is_inclusive_and_zero_turns_it_off(tmp_path):
    for cls in ("a", "b"):
        for i in range(2):
            write_image(str(tmp_path / "d" / cls / f"{i}.png"), size=(30, 40))
    write_image(str(tmp_path / "d" / "a" / "wide.png"), size=(30, 41))  # 1230 pixels
    root = str(tmp_path / "d")
    assert image_folder.scan(root, max_pixels=1200).skipped == {"too large": 1}
    assert image_folder.scan(root, max_pixels=1230).skipped == {}
    assert image_folder.scan(root, max_pixels=0).skipped == {}


# --- in the graph: decode_image and the serving function --------------------------------------


@pytest.mark.parametrize("fmt, make", [
    ("png", png_bytes), ("jpeg", jpeg_bytes), ("gif", lambda: pil_bytes("GIF")),
    ("bmp", lambda: pil_bytes("BMP")), ("webp", lambda: pil_bytes("WEBP", lossless=True)),
])
def test_decode_image_refuses_a_bomb_naming_the_limit(fmt, make):
    bomb = with_size(make(), fmt, 16000, 16000)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 40000000 pixels") as info:
        image_folder.decode_image(tf.constant(bomb), (8, 8), max_pixels=LIMIT)
    assert "--max-image-pixels 40000000" in info.value.message


def test_decode_image_with_the_check_decodes_exactly_as_before():
    for data in (png_bytes(), jpeg_bytes(), pil_bytes("GIF"), pil_bytes("BMP")):
        checked = image_folder.decode_image(tf.constant(data), (16, 16), max_pixels=LIMIT)
        np.testing.assert_array_equal(checked, image_folder.decode_image(tf.constant(data), (16, 16)))


def test_the_check_works_in_tf_data():
    ds = tf.data.Dataset.from_tensor_slices([png_bytes(), big_png()]).map(
        lambda s: image_folder.decode_image(s, (8, 8), max_pixels=LIMIT))
    it = iter(ds)
    assert next(it).shape == (8, 8, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="--max-image-pixels 40000000"):
        next(it)


def plant_config(**kwargs):
    return PlantConfig(backbone="seed_cnn", weights="none", image_size=16, **kwargs)


def test_preprocess_checks_inside_a_traced_map_fn():
    preprocess = plant_data.preprocess(plant_config())
    traced = tf.function(preprocess, input_signature=[tf.TensorSpec([None], tf.string)])
    good = [png_bytes(), jpeg_bytes()]
    np.testing.assert_array_equal(traced(tf.constant(good)), preprocess(tf.constant(good)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 40000000 pixels"):
        traced(tf.constant([png_bytes(), big_png()]))
    # The limit is the config's (37x23 = 851 pixels), and 0 turns the check off.
    small = tf.function(plant_data.preprocess(plant_config(max_image_pixels=800)),
                        input_signature=[tf.TensorSpec([None], tf.string)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 800 pixels"):
        small(tf.constant([png_bytes()]))
    off = plant_data.preprocess(plant_config(max_image_pixels=0))
    assert off(tf.constant([png_bytes()])).shape == (1, 16, 16, 3)


def test_exported_savedmodel_refuses_the_bomb_and_serves_normal_images(tmp_path):
    import keras

    from tf_finetune.serving import saved_model

    config = plant_config()
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    preprocess = plant_data.preprocess(config)
    path = saved_model.export_classifier(model, preprocess=preprocess, class_names=["a", "b"],
                                         export_dir=str(tmp_path), examples=[png_bytes(), jpeg_bytes()])
    serve = tf.saved_model.load(path).signatures["serving_default"]
    good = tf.constant([jpeg_bytes(), pil_bytes("GIF")])
    np.testing.assert_allclose(serve(good)["probabilities"], model(preprocess(good)), atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="--max-image-pixels 40000000"):
        serve(tf.constant([jpeg_bytes(), big_png()]))
    # `predict --model SAVEDMODEL big.png` stops at its inputs, with one line, before decoding.
    big = write(tmp_path / "big.png", big_png())
    result = run_cli("plant_cnn", "predict", "--model", path, big)
    line = assert_one_line_error(result, alone=True)
    assert line == f"error: INPUT {big} {BIG_LINE}"


# --- a real decompression bomb costs neither time nor memory ------------------------------------


def real_bomb_png(side):
    """A valid side x side black PNG, every row compressed: about 300 KB for 10000 px, which
    decodes to 300 MB (and 1.2 GB as floats for the resize)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = bytes(1 + side * 3)  # filter byte 0, then RGB zeros
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return image_header.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


MEMORY_SCRIPT = textwrap.dedent("""\
    import json, resource, sys, time
    import tensorflow as tf
    from projects.plant_cnn import data
    from tf_finetune.data import image_folder
    from tf_finetune.errors import UserError

    path, max_pixels = sys.argv[1], int(sys.argv[2])
    encoded = tf.constant(open(path, "rb").read())
    small = tf.io.encode_png(tf.zeros((4, 4, 3), tf.uint8))
    image_folder.decode_image(small, (8, 8), max_pixels=max_pixels)  # warm up the ops
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    errors = []
    try:
        data.read_inputs([path], max_pixels=max_pixels)
    except UserError as e:
        errors.append(str(e))
    try:
        image_folder.decode_image(encoded, (8, 8), max_pixels=max_pixels)
    except tf.errors.InvalidArgumentError as e:
        errors.append(e.message.splitlines()[0])
    seconds = time.perf_counter() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"seconds": seconds, "grown_mb": grown_mb, "errors": errors}))
""")


def test_a_real_bomb_is_refused_fast_and_without_allocating(tmp_path):
    path = write(tmp_path / "bomb.png", real_bomb_png(10000))
    assert image_header.file_image_size(path) == (10000, 10000)
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, path, str(LIMIT)], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["errors"]) == 2, report
    assert "10000x10000 = 100.0 megapixels" in report["errors"][0]
    assert "more than 40000000 pixels" in report["errors"][1]
    assert report["seconds"] < 2.0, report
    assert report["grown_mb"] < 200, report  # decoding it would take 300 MB, resizing 1.2 GB more
