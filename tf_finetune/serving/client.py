"""A standalone client for an exported LiteRT (`.tflite`) or ONNX (`.onnx`) classifier.

Usage, in an export version folder (this file is copied there as `client.py`):

    python client.py . photo.jpg other.png          # the folder: model.tflite, else model.onnx
    python client.py model_int8.tflite "a fine film" @reviews.txt --json --threads 4

It prints `label<TAB>probability<TAB>input` per input (or one JSON object per line with
`--json`), like `python -m <project> predict`.

LiteRT and ONNX artifacts take tensors (pixels, token ids), not raw inputs, so this file
re-implements the pre-processing that `preprocessing.json` documents, in plain Python and
numpy, to produce exactly the tensors TensorFlow makes:

- `image`: decode (PIL; the first frame of a GIF), resize bilinear with half-pixel centers
  and no antialiasing (as `tf.image.resize`), round to uint8, cast to float32 in 0..255.
  A `.npy` file is taken as already pre-processed pixels, [H, W, C] or [N, H, W, C].
- `text_vocabulary`: a Keras `TextVectorization` standardization, whitespace split,
  vocabulary look-up, truncation and padding to `max_length`.
- `wordpiece`: keras-hub's `BertTokenizer` (basic tokenization, then greedy longest-match
  WordPiece) and `[CLS] pieces [SEP]` packing into `token_ids` and `padding_mask`.

It imports only the standard library and numpy; `ai_edge_litert` (for `.tflite`),
`onnxruntime` (for `.onnx`) and PIL (to decode images) are imported when first needed.
"""

import argparse
import io
import json
import os
import re
import sys
import unicodedata

import numpy as np

PREPROCESSING_FILE = "preprocessing.json"
LITERT_CHUNK = 64  # examples per LiteRT invocation when the batch is dynamic
ONNX_CHUNK = 256  # examples per ONNX Runtime run
PREDICT_CHUNK = 256  # raw inputs turned into tensors at a time by `Client.predict`


# === Runners ===


def load_runner(path, num_threads=2, input_names=None):
    """A callable `run(list_of_numpy_arrays) -> np.ndarray float32 [N, classes]`.

    Args:
        path: a `.tflite` (LiteRT) or `.onnx` file.
        num_threads: CPU threads the runtime may use.
        input_names: the artifact's inputs in the order `run` receives them. By default they
            come from `preprocessing.json` beside `path` when there is one. Artifacts do not
            keep their inputs' order (LiteRT signatures list names alphabetically), so inputs
            are matched by these names when the artifact uses them, else by the `args_0`,
            `args_0_1`, ... numbering Keras gives unnamed inputs, else in the artifact's order.

    Float inputs of an int8/uint8 quantized input tensor are quantized with its scale and zero
    point, and quantized outputs dequantized; other inputs are cast to the tensor's dtype.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Model file {path} not found: pass a .tflite or .onnx file.")
    if input_names is None:
        spec_path = os.path.join(os.path.dirname(os.path.abspath(path)), PREPROCESSING_FILE)
        if os.path.isfile(spec_path):
            with open(spec_path, encoding="utf-8") as f:
                input_names = [spec.get("name") for spec in json.load(f).get("inputs", [])]
    extension = os.path.splitext(path)[1].lower()
    if extension == ".tflite":
        return LiteRTRunner(path, num_threads, input_names)
    if extension == ".onnx":
        return OnnxRunner(path, num_threads, input_names)
    raise ValueError(f"Unknown model format. The model file must end in .tflite or .onnx. Received: path={path}")


def input_order(names, wanted=None):
    """The artifact's input `names` reordered to the model's input order (see `load_runner`)."""
    names = list(names)
    if wanted and None not in wanted and sorted(_short_name(n) for n in names) == sorted(wanted):
        by_name = {_short_name(n): n for n in names}
        return [by_name[w] for w in wanted]
    numbered = [re.fullmatch(r"args((?:_\d+)+)", _short_name(n)) for n in names]
    if all(numbered):
        keys = [tuple(int(i) for i in m.group(1).split("_")[1:]) for m in numbered]
        return [n for _, n in sorted(zip(keys, names))]
    return names


def _short_name(name):
    """`serving_default_token_ids:0` -> `token_ids`."""
    name = re.sub(r":\d+$", "", str(name))
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def _chunks(arrays, size):
    """Yields the arrays cut into consecutive chunks of at most `size` rows."""
    n = len(arrays[0])
    for start in range(0, n, size):
        yield [a[start:start + size] for a in arrays]


def _check_count(path, expected, inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != len(expected):
        received = f"{len(inputs)} arrays" if isinstance(inputs, (list, tuple)) else type(inputs).__name__
        raise ValueError(f"{os.path.basename(path)} takes a list of {len(expected)} input arrays. "
                         f"Received: {received}")


def _batch_size(arrays):
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"All inputs must have the same batch size. Received: batch sizes {sorted(sizes)}")
    return sizes.pop()


def _fill_batch(arrays, batch):
    """Pads each array to `batch` rows (repeating its last row); the runtime's batch is fixed."""
    n = len(arrays[0])
    if n == batch:
        return arrays
    return [np.concatenate([a, np.repeat(a[-1:], batch - n, axis=0)]) for a in arrays]


class LiteRTRunner:
    """Runs a `.tflite` file with `ai_edge_litert`; see `load_runner`."""

    def __init__(self, path, num_threads=2, input_names=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if signatures:
            key = next(iter(signatures))
            self.signature = self.interpreter.get_signature_runner(key)
            details = self.signature.get_input_details()
            names = input_order(signatures[key]["inputs"], input_names)
            self.inputs = [dict(details[n], signature_name=n) for n in names]
            self.output_name = signatures[key]["outputs"][0]  # a classifier has one output
            self.output = self.signature.get_output_details()[self.output_name]
        else:  # no signature: the interpreter's own tensors
            self.signature = None
            details = {d["name"]: d for d in self.interpreter.get_input_details()}
            self.inputs = [details[n] for n in input_order(list(details), input_names)]
            self.output = self.interpreter.get_output_details()[0]
        batch = int(self.inputs[0]["shape_signature"][0]) if len(self.inputs[0]["shape_signature"]) else -1
        self.fixed_batch = batch if batch > 0 else None

    def __call__(self, inputs):
        _check_count(self.path, self.inputs, inputs)
        arrays = [self._to_input(np.asarray(x), d) for x, d in zip(inputs, self.inputs)]
        n = _batch_size(arrays)
        if n == 0:
            return np.zeros((0, int(self.output["shape_signature"][-1])), np.float32)
        outputs = []
        for chunk in _chunks(arrays, self.fixed_batch or LITERT_CHUNK):
            rows = len(chunk[0])
            if self.fixed_batch:
                chunk = _fill_batch(chunk, self.fixed_batch)
            outputs.append(self._invoke(chunk)[:rows])
        return np.concatenate(outputs).astype(np.float32)

    def _invoke(self, arrays):
        if self.signature is not None:
            result = self.signature(**{d["signature_name"]: a for d, a in zip(self.inputs, arrays)})
            output = result[self.output_name]
        else:
            for d, a in zip(self.inputs, arrays):
                if tuple(d["shape"]) != a.shape:
                    self.interpreter.resize_tensor_input(d["index"], a.shape)
            self.interpreter.allocate_tensors()
            for d, a in zip(self.inputs, arrays):
                self.interpreter.set_tensor(d["index"], a)
            self.interpreter.invoke()
            output = self.interpreter.get_tensor(self.output["index"])
        return self._from_output(np.asarray(output))

    @staticmethod
    def _to_input(x, details):
        dtype = np.dtype(details["dtype"])
        scale, zero_point = details["quantization"]
        if scale and dtype.kind in "iu" and x.dtype.kind == "f":  # a quantized input tensor
            info = np.iinfo(dtype)
            q = x.astype(np.float32) / np.float32(scale)
            q = np.sign(q) * np.floor(np.abs(q) + 0.5) + zero_point  # TFLite rounds half away from 0
            return np.clip(q, info.min, info.max).astype(dtype)
        return np.ascontiguousarray(x, dtype=dtype)

    def _from_output(self, y):
        scale, zero_point = self.output["quantization"]
        if scale and y.dtype.kind in "iu":
            return (y.astype(np.float32) - zero_point) * np.float32(scale)
        return y.astype(np.float32)


_ONNX_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


class OnnxRunner:
    """Runs a `.onnx` file with `onnxruntime` on the CPU; see `load_runner`."""

    def __init__(self, path, num_threads=2, input_names=None):
        import onnxruntime

        self.path = path
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(path, sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        by_name = {i.name: i for i in self.session.get_inputs()}
        self.inputs = [by_name[n] for n in input_order(list(by_name), input_names)]
        self.output_name = self.session.get_outputs()[0].name
        batch = self.inputs[0].shape[0] if self.inputs[0].shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def __call__(self, inputs):
        _check_count(self.path, self.inputs, inputs)
        arrays = [np.ascontiguousarray(x, dtype=_ONNX_DTYPES.get(i.type, np.float32))
                  for x, i in zip(inputs, self.inputs)]
        n = _batch_size(arrays)
        if n == 0:
            last = self.session.get_outputs()[0].shape[-1]
            return np.zeros((0, last if isinstance(last, int) else 0), np.float32)
        outputs = []
        for chunk in _chunks(arrays, self.fixed_batch or ONNX_CHUNK):
            rows = len(chunk[0])
            if self.fixed_batch:
                chunk = _fill_batch(chunk, self.fixed_batch)
            feed = {i.name: a for i, a in zip(self.inputs, chunk)}
            outputs.append(np.asarray(self.session.run([self.output_name], feed)[0])[:rows])
        return np.concatenate(outputs).astype(np.float32)


# === Text: TextVectorization standardizations ===

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PUNCTUATION = str.maketrans("", "", "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'")  # Keras's, deleted
_BR = re.compile(r"<br[\t\n\f\r ]*/?>")  # RE2's \s is ASCII [\t\n\f\r ]
_NOT = re.compile(r"n't\b", re.ASCII)  # RE2's \b is an ASCII word boundary
_SPACES = re.compile(r" {2,}")
_ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")  # what tf.strings.split splits on

# Unicode 15.0 additions, as RE2 (TensorFlow's regexes) classifies them: `unicode_category`
# reads them here when this Python's `unicodedata` is older (Unicode 14 in Python 3.11) and
# says "Cn" (unassigned). (first, last, category; L -> "Lo", N -> "No", S -> "So", P -> "Po")
_UNICODE_15_0 = (
    (0x0CF3, 0x0CF3, "Mc"), (0x0ECE, 0x0ECE, "Mn"), (0x10EFD, 0x10EFF, "Mn"), (0x1123F, 0x11240, "Lo"),
    (0x11241, 0x11241, "Mn"), (0x11B00, 0x11B09, "Po"), (0x11F00, 0x11F01, "Mn"), (0x11F02, 0x11F02, "Lo"),
    (0x11F03, 0x11F03, "Mc"), (0x11F04, 0x11F10, "Lo"), (0x11F12, 0x11F33, "Lo"), (0x11F34, 0x11F35, "Mc"),
    (0x11F36, 0x11F3A, "Mn"), (0x11F3E, 0x11F3F, "Mc"), (0x11F40, 0x11F40, "Mn"), (0x11F41, 0x11F41, "Mc"),
    (0x11F42, 0x11F42, "Mn"), (0x11F43, 0x11F4F, "Po"), (0x11F50, 0x11F59, "No"), (0x1342F, 0x1342F, "Lo"),
    (0x13439, 0x1343F, "Cf"), (0x13440, 0x13440, "Mn"), (0x13441, 0x13446, "Lo"), (0x13447, 0x13455, "Mn"),
    (0x1B132, 0x1B132, "Lo"), (0x1B155, 0x1B155, "Lo"), (0x1D2C0, 0x1D2D3, "No"), (0x1DF25, 0x1DF2A, "Lo"),
    (0x1E030, 0x1E06D, "Lo"), (0x1E08F, 0x1E08F, "Mn"), (0x1E4D0, 0x1E4EB, "Lo"), (0x1E4EC, 0x1E4EF, "Mn"),
    (0x1E4F0, 0x1E4F9, "No"), (0x1F6DC, 0x1F6DC, "So"), (0x1F774, 0x1F776, "So"), (0x1F77B, 0x1F77F, "So"),
    (0x1F7D9, 0x1F7D9, "So"), (0x1FA75, 0x1FA77, "So"), (0x1FA87, 0x1FA88, "So"), (0x1FAAD, 0x1FAAF, "So"),
    (0x1FABB, 0x1FABD, "So"), (0x1FABF, 0x1FABF, "So"), (0x1FACE, 0x1FACF, "So"), (0x1FADA, 0x1FADB, "So"),
    (0x1FAE8, 0x1FAE8, "So"), (0x1FAF7, 0x1FAF8, "So"), (0x2B739, 0x2B739, "Lo"), (0x31350, 0x323AF, "Lo"),
)


def unicode_category(c):
    """The Unicode general category of `c` as TensorFlow's RE2 sees it (Unicode 15.0)."""
    category = unicodedata.category(c)
    if category == "Cn":
        cp = ord(c)
        for first, last, new in _UNICODE_15_0:
            if first <= cp <= last:
                return new
    return category


def _replace_runs(text, keep):
    """Each run of characters whose Unicode category `keep` rejects -> one space."""
    chars = [c if keep(unicode_category(c)) else " " for c in text]
    return _SPACES.sub(" ", "".join(chars))


def lower_ascii(text):
    """`tf.strings.lower`: only A-Z change (its default encoding is bytes, not UTF-8)."""
    return text.translate(_ASCII_LOWER)


def standardize_lower_nt_alnum(text):
    """`projects.sentiment_lstm.layers.standardize`: lower-case (ASCII), `<br />` and runs of
    anything but letters and numbers (`[^\\pL\\pN]+`) -> a space, `n't` -> ` not`."""
    text = _BR.sub(" ", lower_ascii(text))
    text = _NOT.sub(" not", text)
    return _replace_runs(text, lambda category: category[0] in "LN")


def standardize_lower_strip_punctuation(text):
    """`projects.sentiment_lstm.layers.standardize_seed`: Keras's `lower_and_strip_punctuation`,
    then runs of separators and control characters (`[\\pZ\\pC]+`, where RE2's C leaves out
    unassigned code points) -> a space."""
    text = lower_ascii(text).translate(_PUNCTUATION)
    return _replace_runs(text, lambda category: category[0] not in "ZC" or category == "Cn")


STANDARDIZATIONS = {
    "lower_nt_alnum": standardize_lower_nt_alnum,
    "lower_strip_punctuation": standardize_lower_strip_punctuation,
    # Keras's built-in `TextVectorization(standardize=...)` options.
    "lower_and_strip_punctuation": lambda text: lower_ascii(text).translate(_PUNCTUATION),
    "lower": lower_ascii,
    "strip_punctuation": lambda text: text.translate(_PUNCTUATION),
    None: lambda text: text,
}


def read_vocabulary(path):
    """The tokens of a vocabulary file, one per line (line i is id i; a line may be empty)."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if text.endswith("\n"):
        text = text[:-1]
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _token_ids(tokens):
    ids = {}
    for i, token in enumerate(tokens):
        ids.setdefault(token, i)
    return ids


class VocabularyEncoder:
    """`text_vocabulary` pre-processing: text -> standardized words -> ids, padded."""

    def __init__(self, settings, folder):
        standardize = settings.get("standardize")
        if standardize not in STANDARDIZATIONS:
            names = sorted(k for k in STANDARDIZATIONS if k)
            raise ValueError(f"Unknown standardization. Choose one of {names} or null. "
                             f"Received: standardize={standardize!r}")
        self.standardize = STANDARDIZATIONS[standardize]
        self.vocabulary = read_vocabulary(os.path.join(folder, settings.get("vocabulary", "vocabulary.txt")))
        self.ids = _token_ids(self.vocabulary)
        self.oov_id = int(settings.get("oov_id", 1))
        self.pad_id = int(settings.get("pad_id", 0))
        self.max_length = settings.get("max_length")

    def words(self, text):
        return [w for w in _ASCII_WHITESPACE.split(self.standardize(text)) if w]

    def encode(self, text):
        """The ids of `text`, not yet truncated or padded."""
        return [self.ids.get(w, self.oov_id) for w in self.words(text)]

    def __call__(self, texts, inputs):
        rows = [self.encode(t) for t in texts]
        length = _fixed_length(inputs[0], self.max_length) or max((len(r) for r in rows), default=0)
        return [_pad(rows, length, self.pad_id, _dtype(inputs[0], "int64"))]


# === Text: BERT WordPiece ===

# keras-hub's CJK_REGEX: the CJK Unified Ideographs blocks, each a separate word.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# What tf_text.case_fold_utf8 (NFKC_Casefold) removes: the default ignorable code points.
_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
_DEFAULT_IGNORABLE = frozenset(chr(c) for lo, hi in _DEFAULT_IGNORABLE_RANGES for c in range(lo, hi + 1))

# The Unicode 15.0 letters with an NFKC mapping (U+1E030..U+1E06D, Cyrillic modifier letters),
# which this Python's `unicodedata` may not know yet; tensorflow-text's ICU does.
_NFKC_15_0 = {0x1E030 + i: c for i, c in enumerate(
    "абвгдежзиклмопрстуфхцчшыэюꚉәіјөүӏ"  # U+1E030..U+1E050, modifier letters
    "абвгдежзиклопсуфхцчшъыґіѕџҫꙑұ")}  # U+1E051..U+1E06D, subscript letters


def _in(ranges, c):
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_cjk(c):
    return _in(_CJK_RANGES, c)


def _is_punctuation(c):
    """keras-hub's PUNCTUATION_REGEX: every ASCII symbol, and Unicode P*."""
    cp = ord(c)
    return (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
            or unicode_category(c)[0] == "P")


def _is_whitespace(c):
    """keras-hub's WHITESPACE_REGEX: RE2's `\\s` (ASCII), control and format characters."""
    return c in " \t\n\f\r" or unicode_category(c) in ("Cc", "Cf")


def case_fold(word):
    """`tf_text.case_fold_utf8`: NFKC_Casefold (NFKC, full case folding, and no default
    ignorable code points)."""
    word = unicodedata.normalize("NFKC", word.translate(_NFKC_15_0))
    word = unicodedata.normalize("NFKC", word.casefold())
    return "".join(c for c in word if c not in _DEFAULT_IGNORABLE)


def bert_words(text, lowercase=True, strip_accents=False, split_on_cjk=True):
    """keras-hub's `pretokenize` (the tensorflow-text path) of one text: words and single
    punctuation/CJK characters."""
    if split_on_cjk:
        text = "".join(f" {c} " if _is_cjk(c) else c for c in text)
    if strip_accents:
        text = unicodedata.normalize("NFD", text)
        text = "".join(c for c in text if unicode_category(c) != "Mn")
    words, word = [], []
    for c in text:
        keep = _is_punctuation(c) or (split_on_cjk and _is_cjk(c))
        if keep or _is_whitespace(c):
            if word:
                words.append("".join(word))
                word = []
            if keep:
                words.append(c)
        else:
            word.append(c)
    if word:
        words.append("".join(word))
    if lowercase:
        words = [case_fold(w) for w in words]
    return words


class WordPieceEncoder:
    """`wordpiece` pre-processing: keras-hub's `BertTokenizer` and `[CLS] ... [SEP]` packing
    (`projects.bert_classifier.layers.BertTokenize`): `token_ids` and `padding_mask`."""

    def __init__(self, settings, folder):
        self.vocabulary = read_vocabulary(os.path.join(folder, settings.get("vocabulary", "vocabulary.txt")))
        self.ids = _token_ids(self.vocabulary)
        self.lowercase = bool(settings.get("lowercase", True))
        self.strip_accents = bool(settings.get("strip_accents", False))
        self.split_on_cjk = bool(settings.get("split_on_cjk", True))
        self.suffix = settings.get("suffix_indicator", "##")
        self.max_bytes_per_word = int(settings.get("max_bytes_per_word", 100))
        self.max_length = settings.get("max_length")
        special = {}
        for key, default in (("cls", "[CLS]"), ("sep", "[SEP]"), ("pad", "[PAD]"), ("unk", "[UNK]")):
            token = settings.get(key, default)
            if token not in self.ids:
                raise ValueError(f"The vocabulary has no {key} token. Received: {key}={token!r}")
            special[key] = self.ids[token]
        self.cls_id, self.sep_id, self.pad_id, self.unk_id = (special[k] for k in ("cls", "sep", "pad", "unk"))

    def word_ids(self, word):
        """Greedy longest-match-first WordPiece of one word; [UNK] when it cannot be split
        into vocabulary pieces or is longer than `max_bytes_per_word` bytes."""
        if len(word.encode("utf-8")) > self.max_bytes_per_word:
            return [self.unk_id]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.suffix + word[start:end]
                if piece in self.ids:
                    ids.append(self.ids[piece])
                    start = end
                    break
            else:
                return [self.unk_id]
        return ids

    def encode(self, text):
        """The word piece ids of `text`, without [CLS], [SEP] or truncation."""
        words = bert_words(text, self.lowercase, self.strip_accents, self.split_on_cjk)
        return [i for w in words for i in self.word_ids(w)]

    def __call__(self, texts, inputs):
        # A fixed sequence length is padded to; else the batch's longest, as BertTokenize does.
        fixed = _fixed_length(inputs[0], None)
        limits = [int(n) for n in (self.max_length, fixed) if n]
        max_length = min(limits) if limits else None
        rows = []
        for text in texts:
            pieces = self.encode(text)
            if max_length:
                pieces = pieces[:max_length - 2]
            rows.append([self.cls_id, *pieces, self.sep_id])
        length = fixed or max((len(r) for r in rows), default=2)
        tensors = {
            "token_ids": lambda spec: _pad(rows, length, self.pad_id, _dtype(spec, "int32")),
            "padding_mask": lambda spec: _pad([[1] * len(r) for r in rows], length, 0, _dtype(spec, "int32")),
            "segment_ids": lambda spec: np.zeros((len(rows), length), _dtype(spec, "int32")),
        }
        names = [spec.get("name") for spec in inputs]
        if not all(name in tensors for name in names):  # unnamed: token_ids, padding_mask, segment_ids
            names = list(tensors)[:len(inputs)]
        return [tensors[name](spec) for name, spec in zip(names, inputs)]


def _fixed_length(spec, default):
    """The sequence length `spec` fixes (its second dimension), else `default`."""
    shape = spec.get("shape") or []
    if len(shape) > 1 and isinstance(shape[1], int) and shape[1] > 0:
        return shape[1]
    return int(default) if default else None


def _dtype(spec, default):
    return np.dtype(spec.get("dtype") or default)


def _pad(rows, length, value, dtype):
    out = np.full((len(rows), length), value, dtype)
    for i, row in enumerate(rows):
        row = row[:length]
        out[i, :len(row)] = row
    return out


# === Images ===


def read_image_bytes(raw):
    """Encoded image bytes from a path or bytes."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    with open(raw, "rb") as f:
        return f.read()


def decode_image(data):
    """Encoded JPEG/PNG/BMP/GIF bytes -> uint8 [H, W, 3], as `tf.io.decode_image(channels=3)`
    (the first frame of an animation; alpha dropped, not blended)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grayscale: keep the high byte
            pixels = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        else:
            pixels = np.array(image.convert("RGB"))
            transparent = image.info.get("transparency")
            if image.format == "GIF" and image.mode == "P" and isinstance(transparent, int):
                pixels[np.asarray(image) == transparent] = 0  # TensorFlow's GIF decoder: black
    return pixels


def _resize_weights(in_size, out_size):
    """TensorFlow's bilinear interpolation along one axis with half-pixel centers, in float32:
    `(lower index, upper index, lerp)` per output pixel."""
    scale = np.float32(in_size) / np.float32(out_size)
    x = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(x)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(x), in_size - 1).astype(np.int64)
    return lower, upper, (x - floor).astype(np.float32)


def resize_bilinear(image, size):
    """`tf.image.resize(image, size, "bilinear")` (half-pixel centers, no antialiasing) of an
    [H, W, C] array, as float32."""
    y0, y1, ly = _resize_weights(image.shape[0], size[0])
    x0, x1, lx = _resize_weights(image.shape[1], size[1])
    image = image.astype(np.float32)
    top, bottom = image[y0], image[y1]
    lx = lx[None, :, None]
    top = top[:, x0] + (top[:, x1] - top[:, x0]) * lx
    bottom = bottom[:, x0] + (bottom[:, x1] - bottom[:, x0]) * lx
    return top + (bottom - top) * ly[:, None, None]


class ImageEncoder:
    """`image` pre-processing: decode, resize, round to uint8, cast to the input's dtype."""

    def __init__(self, settings, folder):
        self.size = tuple(int(s) for s in settings["size"])
        self.channels = int(settings.get("channels", 3))
        if self.channels != 3:
            raise ValueError(f"Only RGB images are implemented. Received: channels={self.channels}")
        resize = settings.get("resize", "bilinear")
        if resize != "bilinear":
            raise ValueError(f"Unknown resize method. Only 'bilinear' is implemented. Received: resize={resize!r}")

    def pixels(self, raw):
        """uint8 [H, W, C] pixels of one image (a path or encoded bytes)."""
        image = decode_image(read_image_bytes(raw))
        if image.shape[:2] != self.size:
            image = np.clip(np.round(resize_bilinear(image, self.size)), 0, 255).astype(np.uint8)
        return image

    def __call__(self, raws, inputs):
        dtype = _dtype(inputs[0], "float32")
        batch = []
        for raw in raws:
            if isinstance(raw, (str, os.PathLike)) and os.fspath(raw).lower().endswith(".npy"):
                array = np.load(raw)
                batch.extend(array if array.ndim == 4 else [array])
            else:
                batch.append(self.pixels(raw))
        if not batch:
            return [np.zeros((0, *self.size, self.channels), dtype)]
        return [np.stack([np.asarray(b, dtype) for b in batch])]


ENCODERS = {"image": ImageEncoder, "text_vocabulary": VocabularyEncoder, "wordpiece": WordPieceEncoder}


# === Client ===


def find_model(path):
    """The model file of `path`: itself when a file, else in the folder `model.tflite`,
    `model.onnx`, or the first `*.tflite` / `*.onnx` by name."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise ValueError(f"{path} is neither a model file nor an export folder: pass a .tflite or .onnx "
                         "file, or the folder holding it and preprocessing.json.")
    for name in ("model.tflite", "model.onnx"):
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    for extension in (".tflite", ".onnx"):
        names = sorted(n for n in os.listdir(path) if n.endswith(extension))
        if names:
            return os.path.join(path, names[0])
    raise ValueError(f"{path} holds no .tflite or .onnx file: pass an export version folder or a model file.")


class Client:
    """Raw inputs (image paths or bytes, or texts) -> class probabilities, with an exported
    LiteRT or ONNX model and the `preprocessing.json` beside it.

    Args:
        path: an export version folder (its `model.tflite`, else `model.onnx`, else the first
            `*.tflite`), or a `.tflite` / `.onnx` file in one.
        num_threads: CPU threads the runtime may use.
    """

    def __init__(self, path, num_threads=2):
        self.model_path = find_model(path)
        self.folder = os.path.dirname(os.path.abspath(self.model_path))
        spec_path = os.path.join(self.folder, PREPROCESSING_FILE)
        if not os.path.isfile(spec_path):
            raise ValueError(f"{self.folder} has no {PREPROCESSING_FILE}: pass a model inside an export folder.")
        with open(spec_path, encoding="utf-8") as f:
            self.spec = json.load(f)
        self.inputs = self.spec["inputs"]
        self.preprocessing = self.spec["preprocessing"]
        kind = self.preprocessing.get("kind")
        if kind not in ENCODERS:
            raise ValueError(f"Unknown pre-processing kind in {spec_path}. Choose one of {sorted(ENCODERS)}. "
                             f"Received: kind={kind!r}")
        self.kind = kind
        self.encoder = ENCODERS[kind](self.preprocessing, self.folder)
        self.class_names = read_vocabulary(os.path.join(self.folder, self.spec.get("labels", "labels.txt")))
        self.runner = load_runner(self.model_path, num_threads, [spec.get("name") for spec in self.inputs])

    def tensors(self, raw_inputs):
        """The model's input arrays for `raw_inputs` (image paths or bytes, or texts)."""
        if isinstance(raw_inputs, (str, bytes)):
            raw_inputs = [raw_inputs]
        raw_inputs = list(raw_inputs)
        if self.kind != "image":
            raw_inputs = [r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r) for r in raw_inputs]
        return self.encoder(raw_inputs, self.inputs)

    def run(self, tensors):
        """Class probabilities, float32 [N, classes], of the model's input arrays."""
        return self.runner(tensors)

    def predict(self, raw_inputs):
        """`[(label, probability, probabilities)]`, one per raw input."""
        if isinstance(raw_inputs, (str, bytes)):
            raw_inputs = [raw_inputs]
        raw_inputs = list(raw_inputs)
        results = []
        for start in range(0, len(raw_inputs), PREDICT_CHUNK):
            for probs in self.run(self.tensors(raw_inputs[start:start + PREDICT_CHUNK])):
                best = int(np.argmax(probs))
                label = self.class_names[best] if best < len(self.class_names) else str(best)
                results.append((label, float(probs[best]), probs))
        return results


# === Command line ===


def read_texts(items):
    """Texts from the command line; `@FILE` stands for the non-empty lines of FILE."""
    texts = []
    for item in items:
        if item.startswith("@"):
            with open(item[1:], encoding="utf-8", errors="replace") as f:
                texts.extend(line.strip() for line in f if line.strip())
        else:
            texts.append(item)
    return texts


def format_predictions(names, predictions, as_json=False):
    """One line per input: `label<TAB>probability<TAB>input`, or a JSON object."""
    lines = []
    for name, (label, p, probs) in zip(names, predictions):
        if as_json:
            lines.append(json.dumps({"input": name, "label": label, "probability": round(p, 6),
                                     "probabilities": [round(float(x), 6) for x in probs]}))
        else:
            lines.append(f"{label}\t{p:.4f}\t{name}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="client.py", description="Classify images or texts with an exported LiteRT or ONNX model.")
    parser.add_argument("path", metavar="PATH", help="the export folder, or a .tflite / .onnx file in it")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="image files (or .npy pixels), or texts (@FILE: one text per line)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per input")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the runtime (default 2)")
    args = parser.parse_args(argv)
    try:
        client = Client(args.path, num_threads=args.threads)
        if client.kind == "image":
            missing = [p for p in args.inputs if not os.path.isfile(p)]
            if missing:
                raise ValueError(f"INPUT {missing[0]} is not a file: pass paths of image files.")
            raw = list(args.inputs)
        else:
            raw = read_texts(args.inputs)
        predictions = client.predict(raw)
    except (ValueError, OSError, KeyError) as e:
        parser.exit(2, f"client.py: error: {e}\n")
    # An input may stand for several (@FILE of texts); then name each by its value.
    names = list(args.inputs) if len(raw) == len(args.inputs) else [str(r) for r in raw]
    for line in format_predictions(names, predictions, as_json=args.json):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
