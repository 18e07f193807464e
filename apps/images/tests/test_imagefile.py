"""Reading type, size and alpha from image headers."""
from __future__ import annotations

import base64
import struct

from apps.images.imagefile import inspect
from tests.upstream import gradient_png, png_bytes, png_rgba

# A 3x2 baseline JPEG (the smallest a browser writes).
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720"
    "222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080002000301011100ffc4001f0000010501010101010100000000000000000102030405"
    "060708090a0bffda0008010100003f00d2cf20ffd9"
)


def test_png_size_and_alpha():
    assert inspect(png_bytes(5, 7)).size == "5x7"
    assert not inspect(gradient_png(16, 8)).has_alpha
    info = inspect(png_rgba(4, 4, alpha=0))
    assert info.format == "png" and info.has_alpha and info.content_type == "image/png"


def test_png_with_trns_chunk_has_alpha():
    png = png_bytes(2, 2)
    trns = struct.pack(">I", 6) + b"tRNS" + b"\x00\x01\x00\x02\x00\x03" + b"\x00\x00\x00\x00"
    with_trns = png[:33] + trns + png[33:]
    assert inspect(with_trns).has_alpha


def test_jpeg_size():
    info = inspect(JPEG)
    assert (info.format, info.width, info.height, info.has_alpha) == ("jpeg", 3, 2, False)


def test_webp_lossless_size():
    # VP8L header of a 5x3 image with alpha
    w, h = 5 - 1, 3 - 1
    bits = w | (h << 14) | (1 << 28)
    body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", bits)
    webp = b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
    info = inspect(webp)
    assert (info.format, info.size, info.has_alpha) == ("webp", "5x3", True)


def test_not_an_image():
    assert inspect(b"%PDF-1.7 not an image") is None
    assert inspect(b"") is None
    assert inspect(b"\x89PNG\r\n\x1a\n" + b"\x00" * 3) is None  # truncated
    assert inspect(base64.b64encode(png_bytes())) is None
