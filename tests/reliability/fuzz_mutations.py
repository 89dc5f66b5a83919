"""Byte-level mutations of video files for the decoder fuzzer (``fuzz_harness``).

Every mutation is a pure function ``(data, rng, ext) -> (bytes, detail)``: the same input bytes and
generator state give the same output, so a case is reproduced from (source, kind, seed) alone.
``detail`` says what was done (``"truncate at 1234 of 5000"``) for the report of a failing case.

Besides blind mutations (truncation, bit flips, overwritten/zeroed/duplicated/deleted ranges) the
``header`` kind knows the containers the project reads: it corrupts MP4 atom sizes and sample
tables, Matroska element sizes, AVI chunk fields, Ogg page headers (with a recomputed CRC, so the
page is not simply dropped), MPEG-TS packet headers and MPEG-PS start-code payloads. Those are the
fields a demuxer trusts to size its allocations and loops.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

__all__ = ["MUTATIONS", "mutate"]

Mutation = Callable[[bytes, np.random.Generator, str], tuple[bytes, str]]

# Values that make a size or count field lie: zero, one, huge, the sign bit, all ones.
_U32_LIES = (0, 1, 7, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000000)


def _offset(rng: np.random.Generator, n: int) -> int:
    """A random position in [0, n); positions near the start (headers) are drawn more often."""
    if n <= 1:
        return 0
    if rng.random() < 0.3:
        return int(rng.integers(0, min(n, 4096)))
    return int(rng.integers(0, n))


def _length(rng: np.random.Generator, n: int) -> int:
    """A run length from 1 byte to about a tenth of the file, small lengths more often."""
    top = max(2, n // 10)
    return int(min(top, 2 ** rng.uniform(0, np.log2(top))))


def truncate(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    # A third of the cuts land in the last 5%: a download that stopped just short.
    n = len(data)
    cut = int(rng.integers(int(n * 0.95), n)) if rng.random() < 0.33 else _offset(rng, n)
    return data[:cut], f"truncate at {cut} of {n}"


def flip_bits(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    out = bytearray(data)
    count = int(rng.integers(1, 65))
    for _ in range(count):
        pos = _offset(rng, len(out))
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out), f"flip {count} bits"


def overwrite(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    out = bytearray(data)
    pos, size = _offset(rng, len(out)), _length(rng, len(out))
    noise = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    out[pos : pos + size] = noise[: len(out) - pos]
    return bytes(out), f"overwrite {size} bytes at {pos}"


def zero_range(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    out = bytearray(data)
    pos, size = _offset(rng, len(out)), _length(rng, len(out))
    end = min(len(out), pos + size)
    out[pos:end] = bytes(end - pos)
    return bytes(out), f"zero {end - pos} bytes at {pos}"


def duplicate_chunk(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    src, size, dst = _offset(rng, len(data)), _length(rng, len(data)), _offset(rng, len(data))
    chunk = data[src : src + size]
    return data[:dst] + chunk + data[dst:], f"copy {len(chunk)} bytes from {src} to {dst}"


def delete_chunk(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    pos, size = _offset(rng, len(data)), _length(rng, len(data))
    return data[:pos] + data[pos + size :], f"delete {size} bytes at {pos}"


def empty(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    return b"", "empty file"


def random_bytes(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    """Noise with the video's extension; half the time behind the source's first bytes, so the
    container is recognised and its demuxer reads noise."""
    size = int(2 ** rng.uniform(0, 17))
    noise = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    if rng.random() < 0.5:
        keep = int(rng.integers(4, 257))
        return data[:keep] + noise, f"first {keep} bytes then {size} random bytes"
    return noise, f"{size} random bytes"


# ---------------------------------------------------------------------------- container headers


def _put_u32(out: bytearray, pos: int, value: int) -> None:
    if pos >= 0 and pos + 4 <= len(out):
        out[pos : pos + 4] = struct.pack(">I", value)


def _lie(rng: np.random.Generator) -> int:
    if rng.random() < 0.25:
        return int(rng.integers(0, 2**32))
    return _U32_LIES[int(rng.integers(len(_U32_LIES)))]


_MP4_PARENTS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex"}
_MP4_TABLES = {b"stsz", b"stco", b"co64", b"stts", b"stss", b"stsc", b"ctts", b"elst", b"stsd"}


def mp4_atoms(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of the atoms of an MP4/MOV file, nested ones included."""
    atoms: list[tuple[int, int, bytes]] = []

    def walk(start: int, end: int, depth: int) -> None:
        pos = start
        while pos + 8 <= end and depth < 8:
            size, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if size == 1 and pos + 16 <= end:
                size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            elif size == 0:
                size = end - pos
            if size < 8 or pos + size > end:
                return
            atoms.append((pos, size, kind))
            if kind in _MP4_PARENTS:
                walk(pos + 8, pos + size, depth + 1)
            pos += size

    walk(0, len(data), 0)
    return atoms


def _mp4_header(out: bytearray, rng: np.random.Generator) -> str:
    atoms = mp4_atoms(bytes(out))
    if not atoms:
        return _generic_header(out, rng)
    top = [a for a in atoms if a[2] in (b"moov", b"mdat")]
    tables = [a for a in atoms if a[2] in _MP4_TABLES]
    r = rng.random()
    if top and r < 0.35:  # the first target: the sizes of moov and mdat
        pos, size, kind = top[int(rng.integers(len(top)))]
        value = _lie(rng) if rng.random() < 0.6 else max(0, size + int(rng.integers(-64, 65)))
        _put_u32(out, pos, value)
        return f"mp4 {kind.decode('latin-1')}@{pos} size {size} -> {value}"
    if tables and r < 0.7:  # entry counts and entries the demuxer allocates from
        pos, size, kind = tables[int(rng.integers(len(tables)))]
        field = (
            12 if rng.random() < 0.6 else 12 + 4 * int(rng.integers(1, max(2, (size - 12) // 4)))
        )
        value = _lie(rng)
        _put_u32(out, pos + field, value)
        return f"mp4 {kind.decode('latin-1')}@{pos} field +{field} -> {value}"
    if r < 0.8:
        found = out.find(b"avcC")
        if found >= 0:  # the SPS/PPS: picture size, profile, reference counts
            at = found + 4 + int(rng.integers(0, 40))
            if at < len(out):
                out[at] = int(rng.integers(256))
                return f"mp4 avcC byte {at} -> {out[at]}"
    pos, size, kind = atoms[int(rng.integers(len(atoms)))]
    if rng.random() < 0.5:
        value = _lie(rng)
        _put_u32(out, pos, value)
        return f"mp4 {kind.decode('latin-1')}@{pos} size {size} -> {value}"
    out[pos + 4 : pos + 8] = rng.integers(97, 123, size=4, dtype=np.uint8).tobytes()
    return f"mp4 {kind.decode('latin-1')}@{pos} renamed {bytes(out[pos + 4 : pos + 8])!r}"


# Matroska element IDs of two bytes or more (one-byte IDs are too common to find by search).
_MKV_IDS = {
    "EBML": b"\x1a\x45\xdf\xa3",
    "Segment": b"\x18\x53\x80\x67",
    "SeekHead": b"\x11\x4d\x9b\x74",
    "Info": b"\x15\x49\xa9\x66",
    "Tracks": b"\x16\x54\xae\x6b",
    "Cluster": b"\x1f\x43\xb6\x75",
    "Cues": b"\x1c\x53\xbb\x6b",
    "CodecPrivate": b"\x63\xa2",
    "TimecodeScale": b"\x2a\xd7\xb1",
    "Duration": b"\x44\x89",
}


def _mkv_header(out: bytearray, rng: np.random.Generator) -> str:
    found = [(name, out.find(ident), ident) for name, ident in _MKV_IDS.items()]
    found = [f for f in found if f[1] >= 0]
    if not found:
        return _generic_header(out, rng)
    name, pos, ident = found[int(rng.integers(len(found)))]
    at = pos + len(ident)  # the element's size, an EBML variable-length integer
    if at >= len(out):
        return _generic_header(out, rng)
    first = out[at]
    width = 9 - first.bit_length() if first else 1  # bytes of the size field
    width = min(width, 8, len(out) - at)
    choice = int(rng.integers(5))
    marker = 1 << (7 * width)  # the length bit of a vint ``width`` bytes long
    sizes = {0: ("unknown size", marker - 1), 1: ("huge size", marker - 2), 2: ("zero size", 0)}
    if choice in sizes:  # unknown: all value bits set; huge: runs past the end of the file
        what, value = sizes[choice]
        out[at : at + width] = (marker | value).to_bytes(width, "big")
    elif choice == 3:  # an invalid size marker (no length bit)
        out[at] = 0
        what = "invalid size"
    else:  # the ID itself
        out[pos] = int(rng.integers(256))
        what = "ID byte"
    return f"mkv {name}@{pos} {what}"


# AVI chunks and the 32-bit fields after their fourcc (size first) worth lying in.
_AVI_CHUNKS = (b"RIFF", b"LIST", b"avih", b"strh", b"strf", b"idx1", b"movi", b"00dc", b"indx")


def _avi_header(out: bytearray, rng: np.random.Generator) -> str:
    found = [(c, out.find(c)) for c in _AVI_CHUNKS]
    found = [f for f in found if f[1] >= 0]
    if not found:
        return _generic_header(out, rng)
    chunk, pos = found[int(rng.integers(len(found)))]
    field = 4 if rng.random() < 0.4 else 4 + 4 * int(rng.integers(1, 14))
    value = _lie(rng)
    if pos + field + 4 <= len(out):
        struct.pack_into("<I", out, pos + field, value)
    return f"avi {chunk.decode('latin-1')}@{pos} field +{field} -> {value}"


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_header(out: bytearray, rng: np.random.Generator) -> str:
    pages = []
    pos = out.find(b"OggS")
    while pos >= 0 and len(pages) < 64:
        pages.append(pos)
        pos = out.find(b"OggS", pos + 4)
    if not pages:
        return _generic_header(out, rng)
    # The first pages carry the codec headers: pick them more often.
    page = pages[int(rng.integers(min(len(pages), 4)))] if rng.random() < 0.6 else pages[-1]
    if page + 27 > len(out):
        return _generic_header(out, rng)
    nsegs = out[page + 26]
    at = page + int(rng.integers(4, 27 + nsegs))
    at = min(at, len(out) - 1)
    out[at] = int(rng.integers(256)) if rng.random() < 0.5 else out[at] ^ 0xFF
    fixed = ""
    if rng.random() < 0.7:  # a valid CRC: the demuxer believes the page
        nsegs = out[page + 26]
        end = page + 27 + nsegs + sum(out[page + 27 : page + 27 + nsegs])
        if end <= len(out):
            body = bytearray(out[page:end])
            body[22:26] = bytes(4)
            struct.pack_into("<I", out, page + 22, _ogg_crc(bytes(body)))
            fixed = ", CRC fixed"
    return f"ogg page@{page} byte {at - page} -> {out[at]}{fixed}"


def _ts_header(out: bytearray, rng: np.random.Generator) -> str:
    packets = len(out) // 188
    if packets == 0 or out[0] != 0x47:
        return _ps_header(out, rng)
    # The PAT and PMT come first: corrupt those packets more often.
    k = int(rng.integers(min(packets, 4))) if rng.random() < 0.6 else int(rng.integers(packets))
    at = k * 188 + int(rng.integers(0, 24))
    out[at] = int(rng.integers(256))
    return f"ts packet {k} byte {at - k * 188} -> {out[at]}"


def _ps_header(out: bytearray, rng: np.random.Generator) -> str:
    starts = []
    pos = out.find(b"\x00\x00\x01")
    while pos >= 0 and len(starts) < 256:
        if pos + 3 < len(out) and out[pos + 3] in (0xBA, 0xBB, 0xB3, 0xB5, 0xB8, 0xE0, 0x00):
            starts.append(pos)
        pos = out.find(b"\x00\x00\x01", pos + 3)
    if not starts:
        return _generic_header(out, rng)
    pos = starts[int(rng.integers(len(starts)))]
    code = out[pos + 3]
    at = min(len(out) - 1, pos + 4 + int(rng.integers(0, 8)))
    out[at] = 0xFF if rng.random() < 0.3 else int(rng.integers(256))
    return f"start code {code:02x}@{pos} byte +{at - pos} -> {out[at]}"


def _generic_header(out: bytearray, rng: np.random.Generator) -> str:
    count = int(rng.integers(1, 9))
    for _ in range(count):
        at = int(rng.integers(0, min(len(out), 256)))
        out[at] = int(rng.integers(256))
    return f"{count} bytes of the first 256"


_HEADERS = {
    ".mp4": _mp4_header,
    ".mov": _mp4_header,
    ".m4v": _mp4_header,
    ".3gp": _mp4_header,
    ".mkv": _mkv_header,
    ".webm": _mkv_header,
    ".avi": _avi_header,
    ".ogv": _ogg_header,
    ".ogg": _ogg_header,
    ".ts": _ts_header,
    ".mpg": _ps_header,
    ".mpeg": _ps_header,
}


def header(data: bytes, rng: np.random.Generator, ext: str) -> tuple[bytes, str]:
    """Corrupt one structural field of the container ``ext`` names (see the module docstring)."""
    out = bytearray(data)
    if not out:
        return data, "nothing to corrupt"
    detail = _HEADERS.get(ext.lower(), _generic_header)(out, rng)
    return bytes(out), detail


# name -> mutation; "none" is the untouched file, the control that must decode.
MUTATIONS: dict[str, Mutation] = {
    "none": lambda data, rng, ext: (data, "unchanged"),
    "truncate": truncate,
    "flip_bits": flip_bits,
    "overwrite": overwrite,
    "zero_range": zero_range,
    "duplicate": duplicate_chunk,
    "delete": delete_chunk,
    "header": header,
    "empty": empty,
    "random": random_bytes,
}


def mutate(data: bytes, kind: str, seed: int, ext: str) -> tuple[bytes, str]:
    """The bytes of case ``seed`` of mutation ``kind`` applied to ``data`` (a file ``ext``)."""
    rng = np.random.default_rng(seed)
    return MUTATIONS[kind](data, rng, ext)
