"""An image's width and height from its header alone, to refuse decompression bombs.

A 20000x20000 PNG is a few kilobytes on disk and 1.2 GB once decoded. `image_size` reads the
dimensions an image declares (PNG, JPEG, GIF, BMP, WebP: what `tf.io.decode_image` decodes)
without decoding it, and `check_pixels` turns "more than `max_pixels`" into one line for the
user. `file_image_size` reads only the first bytes of a file (a JPEG's frame header may come
after large metadata segments; then it reads on, chunk by chunk, until it finds it).

The in-graph twin, for the exported SavedModel, is `image_folder.decode_image(...,
max_pixels=...)`. Pure Python: nothing here imports TensorFlow.
"""

import struct

from tf_finetune.errors import UserError

# 40 MP: a 7300x5500 photo passes; decoding it to RGB takes 120 MB.
DEFAULT_MAX_PIXELS = 40_000_000
FLAG = "--max-image-pixels"
HEADER_BYTES = 64 * 1024  # what `file_image_size` reads first

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers, which carry the size: SOF0..SOF15 except DHT, JPG and DAC.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: SOI, TEM, RST0..RST7.
JPEG_STANDALONE = frozenset({0xD8, 0x01, *range(0xD0, 0xD8)})


def image_size(data):
    """`(width, height)` declared by the header of encoded image `data`, or None.

    None means the format is not one of PNG, JPEG, GIF, BMP, WebP, or its header is cut
    short or malformed (decoding will then fail or be caught elsewhere). Only the first
    bytes are read: for a JPEG, up to its first start-of-frame segment.
    """
    if data.startswith(PNG_SIGNATURE):
        return _png_size(data)
    if _is_jpeg(data):
        return _jpeg_size(data)[0]
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _unpack("<HH", data, 6)
    if data.startswith(b"BM"):
        return _bmp_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def file_image_size(path, chunk_size=HEADER_BYTES):
    """`image_size` of the file at `path`, reading as little of it as possible.

    Reads the first `chunk_size` bytes; only a JPEG whose frame header lies further in
    makes it read more (doubling the chunk each time), up to the end of the file.
    """
    with open(path, "rb") as f:
        data = f.read(chunk_size)
        while _is_jpeg(data):
            size, need_more = _jpeg_size(data)
            if not need_more:
                return size
            more = f.read(max(chunk_size, len(data)))
            if not more:
                return None
            data += more
    return image_size(data)


def over_limit(size, max_pixels):
    """Whether a declared `(width, height)` has more than `max_pixels` pixels (0 = no limit)."""
    return bool(max_pixels) and size is not None and size[0] * size[1] > max_pixels


def limit_message(name, size, max_pixels):
    """The one line for an image over the limit; `name` says which (e.g. "INPUT big.png")."""
    width, height = size
    return (
        f"{name} declares {width}x{height} = {width * height / 1e6:.1f} megapixels, over "
        f"{FLAG} {max_pixels}: resize it, or raise the limit."
    )


def check_pixels(data, max_pixels, name):
    """Raises `UserError` when encoded image `data` declares more than `max_pixels` pixels.

    Args:
        data: encoded image bytes (only the header is read).
        max_pixels: the limit; 0 disables the check.
        name: what the image is called in the error, e.g. "INPUT big.png".

    Returns:
        The declared `(width, height)`, or None when the header could not be read.
    """
    size = image_size(data)
    if over_limit(size, max_pixels):
        raise UserError(limit_message(name, size, max_pixels))
    return size


def check_file(path, max_pixels, name=None):
    """`check_pixels` for the file at `path`, reading only its header; `name` defaults to
    the path."""
    size = file_image_size(path)
    if over_limit(size, max_pixels):
        raise UserError(limit_message(name or path, size, max_pixels))
    return size


# --- the formats ----------------------------------------------------------------------------


def _unpack(fmt, data, offset):
    """`struct.unpack_from`, or None when `data` is too short."""
    if len(data) < offset + struct.calcsize(fmt):
        return None
    return struct.unpack_from(fmt, data, offset)


def _is_jpeg(data):
    return data[:3] == b"\xff\xd8\xff"


def _png_size(data):
    # Signature (8), then the IHDR chunk: length (4), b"IHDR", width (4), height (4), ...
    if data[12:16] != b"IHDR":
        return None
    return _unpack(">II", data, 16)


def _jpeg_size(data):
    """`(size or None, need_more)`: need_more when `data` ends before a frame header."""
    pos = 2  # after SOI
    while True:
        # Each marker is 0xFF (any number of fill 0xFF) then its code.
        while pos < len(data) and data[pos] != 0xFF:
            pos += 1  # tolerate junk between segments, as libjpeg does
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos >= len(data):
            return None, True
        marker = data[pos]
        pos += 1
        if marker in JPEG_STANDALONE or marker == 0x00:
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None, False
        length = _unpack(">H", data, pos)
        if length is None:
            return None, True
        if marker in JPEG_SOF:
            # length (2), sample precision (1), height (2), width (2)
            fields = _unpack(">HH", data, pos + 3)
            if fields is None:
                return None, True
            height, width = fields
            return (width, height), False
        if length[0] < 2:
            return None, False
        pos += length[0]


def _bmp_size(data):
    header_size = _unpack("<I", data, 14)
    if header_size is None:
        return None
    if header_size[0] == 12:  # BITMAPCOREHEADER: unsigned 16-bit width and height
        return _unpack("<HH", data, 18)
    if header_size[0] < 16:
        return None
    fields = _unpack("<ii", data, 18)  # BITMAPINFOHEADER and later: negative height = top-down
    return None if fields is None else (abs(fields[0]), abs(fields[1]))


def _webp_size(data):
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas size, 24 bits each, minus one
        if len(data) < 30:
            return None
        return (int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8L":  # lossless: signature 0x2F, then 14 bits each, minus one
        bits = _unpack("<I", data, 21)
        if data[20:21] != b"\x2f" or bits is None:
            return None
        return ((bits[0] & 0x3FFF) + 1, ((bits[0] >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 ":  # lossy: frame tag (3), start code 9D 01 2A, then 14 bits each
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        fields = _unpack("<HH", data, 26)
        return None if fields is None else (fields[0] & 0x3FFF, fields[1] & 0x3FFF)
    return None
