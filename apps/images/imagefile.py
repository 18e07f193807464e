"""What an uploaded file is, read from its header bytes: type, size in pixels, alpha.

The image APIs refuse files that are not PNG/JPEG/WebP, masks that are not PNGs with an
alpha channel, and masks whose size differs from the image's. Checking here first gives
a message that names the file and the numbers, before anything is sent upstream. Only
headers are read (no decoder, no Pillow): enough for type, width, height and alpha.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "png", "jpeg", "webp", "gif"
    width: int
    height: int
    has_alpha: bool

    @property
    def content_type(self) -> str:
        return f"image/{self.format}"

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def inspect(content: bytes) -> ImageInfo | None:
    """The image's type and size, or None when the bytes are not an image we can read."""
    try:
        if content.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(content)
        if content.startswith(b"\xff\xd8\xff"):
            return _jpeg(content)
        if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
            return _webp(content)
        if content[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", content[6:10])
            return ImageInfo("gif", width, height, has_alpha=False)
    except (struct.error, IndexError):
        return None
    return None


def _png(content: bytes) -> ImageInfo | None:
    if content[12:16] != b"IHDR":
        return None
    width, height, _depth, color_type = struct.unpack(">IIBB", content[16:26])
    # Colour types 4 and 6 carry an alpha channel; the others can have one through tRNS.
    has_alpha = color_type in (4, 6)
    pos = 8
    while not has_alpha and pos + 8 <= len(content):
        length, kind = struct.unpack(">I4s", content[pos:pos + 8])
        if kind == b"tRNS":
            has_alpha = True
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    if not width or not height:
        return None
    return ImageInfo("png", width, height, has_alpha)


def _jpeg(content: bytes) -> ImageInfo | None:
    pos = 2
    while pos + 4 <= len(content):
        if content[pos] != 0xFF:
            return None
        marker = content[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", content[pos + 2:pos + 4])[0]
        # SOF0..SOF15 hold the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", content[pos + 5:pos + 9])
            return ImageInfo("jpeg", width, height, has_alpha=False) if width and height else None
        pos += 2 + length
    return None


def _webp(content: bytes) -> ImageInfo | None:
    chunk = content[12:16]
    if chunk == b"VP8X":
        flags = content[20]
        width = 1 + int.from_bytes(content[24:27], "little")
        height = 1 + int.from_bytes(content[27:30], "little")
        return ImageInfo("webp", width, height, has_alpha=bool(flags & 0x10))
    if chunk == b"VP8L":
        b = content[21:25]
        width = 1 + (b[0] | (b[1] & 0x3F) << 8)
        height = 1 + (b[1] >> 6 | b[2] << 2 | (b[3] & 0x0F) << 10)
        return ImageInfo("webp", width, height, has_alpha=bool(b[3] & 0x10))
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", content[26:30])
        return ImageInfo("webp", width & 0x3FFF, height & 0x3FFF, has_alpha=False)
    return None
