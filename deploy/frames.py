#!/usr/bin/env python3
"""Writes COUNT small PNG frames (48x40 RGB, distinct per frame) into FOLDER, for the smoke
tests; standard library only.  Usage: frames.py FOLDER COUNT"""
import pathlib
import struct
import sys
import zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(t, width=48, height=40):
    rows = b"".join(
        b"\0" + bytes((x * 7 + y * 3 + t * 31) % 251 for x in range(width * 3))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def main():
    folder, count = pathlib.Path(sys.argv[1]), int(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(count):
        (folder / f"frame{t:03}.png").write_bytes(png(t))


if __name__ == "__main__":
    main()
