"""Finds the HDR gain map of a JPEG (Ultra HDR, Adobe / ISO 21496-1 gain maps, Apple's HDR photos).

Such a file is a standard JPEG (the standard-range picture everyone sees) followed by a second JPEG, the gain
map, that HDR displays use to brighten it. The reader decodes the first picture only and the writer encodes
that, so the gain map is lost; the upscaler says so. Only headers are read: the first picture's segments up
to its scan, and the start of the second picture named by the Multi-Picture Format (MPF) index.
"""
from __future__ import annotations

import struct
from pathlib import Path

# what marks a gain map: the hdrgm XMP namespace (Ultra HDR, Adobe), ISO 21496-1's APP2 name, Apple's
# auxiliary image type (lower-cased before the search)
_MARKS = (b"hdrgm", b"ns.adobe.com/hdr-gain-map", b"urn:iso:std:iso:ts:21496", b"hdrgainmap")
_HEAD_BYTES = 1 << 16   # of the second picture: its APP segments come first


def _segments(fh) -> list[tuple[int, int, bytes]]:
    """(marker, file offset of the payload, payload) of the segments before the scan, at the file's position."""
    out = []
    if fh.read(2) != b"\xff\xd8":
        return out
    while True:
        b = fh.read(2)
        if len(b) < 2 or b[0] != 0xFF:
            return out
        marker = b[1]
        if marker == 0xFF:  # fill byte
            fh.seek(-1, 1)
            continue
        if marker in (0xD9, 0xDA) or 0xD0 <= marker <= 0xD7:
            return out
        n = fh.read(2)
        if len(n) < 2:
            return out
        length = struct.unpack(">H", n)[0] - 2
        pos = fh.tell()
        payload = fh.read(length) if 0xE0 <= marker <= 0xEF else b""
        out.append((marker, pos, payload))
        fh.seek(pos + length)


def _second_picture_offsets(payload: bytes, tiff_start: int) -> list[int]:
    """File offsets of the pictures after the first that an MPF index (APP2 payload) names."""
    t = payload[4:]
    if len(t) < 8 or t[:4] not in (b"II*\x00", b"MM\x00*"):
        return []
    e = "<" if t[:2] == b"II" else ">"
    ifd = struct.unpack(e + "I", t[4:8])[0]
    if ifd + 2 > len(t):
        return []
    count = struct.unpack(e + "H", t[ifd:ifd + 2])[0]
    for i in range(count):
        entry = t[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, _, n, value = struct.unpack(e + "HHII", entry)
        if tag == 0xB002:  # MP entries: 16 bytes each; the offset is relative to the MPF TIFF header
            table = t[value:value + n]
            offsets = [struct.unpack(e + "I", table[k + 8:k + 12])[0] for k in range(16, len(table) - 15, 16)]
            return [tiff_start + o for o in offsets if o]
    return []


def has_gain_map(path) -> bool:
    """Whether the JPEG at ``path`` carries an HDR gain map (headers only; False for anything unreadable)."""
    try:
        with open(Path(path), "rb") as fh:
            segments = _segments(fh)
            seconds = []
            for marker, pos, payload in segments:
                if marker in (0xE1, 0xE2) and any(m in payload.lower() for m in _MARKS):
                    return True
                if marker == 0xE2 and payload.startswith(b"MPF\x00"):
                    seconds += _second_picture_offsets(payload, pos + 4)
            for offset in seconds:
                fh.seek(offset)
                head = fh.read(_HEAD_BYTES).lower()
                if head.startswith(b"\xff\xd8") and any(m in head for m in _MARKS):
                    return True
    except (OSError, struct.error):
        return False
    return False
