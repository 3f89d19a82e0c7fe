#!/usr/bin/env python3
"""Writes the seed corpus of the `decode_frame` fuzz target: small images of every kind the
frame decoder meets (baseline, progressive and grayscale JPEG, with restart markers and
chroma subsampling; PNG in every colour type, 16-bit and interlaced), so that fuzzing starts
inside the decoders instead of at their signatures. Needs Pillow; run from the repository
root: `python3 tools/fuzz/frame_seeds.py` (writes fuzz/seeds/decode_frame/)."""

import io
import os

from PIL import Image

OUT = os.path.join("fuzz", "seeds", "decode_frame")


def picture(mode, size=(12, 9)):
    """A small gradient image in `mode`."""
    w, h = size
    rgb = Image.new("RGB", size)
    rgb.putdata([((x * 23) % 256, (y * 29) % 256, ((x + y) * 11) % 256) for y in range(h) for x in range(w)])
    return rgb.convert(mode)


def save(name, image, **options):
    buffer = io.BytesIO()
    image.save(buffer, **options)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(buffer.getvalue())


def main():
    os.makedirs(OUT, exist_ok=True)
    save("baseline.jpg", picture("RGB"), format="JPEG", quality=80)
    save("progressive.jpg", picture("RGB"), format="JPEG", quality=80, progressive=True)
    save("gray.jpg", picture("L"), format="JPEG", quality=80)
    save("subsampled.jpg", picture("RGB", (17, 11)), format="JPEG", quality=60, subsampling=2)
    save("cmyk.jpg", picture("CMYK"), format="JPEG", quality=80)
    save("restarts.jpg", picture("RGB", (40, 24)), format="JPEG", quality=70, restart_marker_blocks=1)
    save("rgb.png", picture("RGB"), format="PNG")
    save("rgba.png", picture("RGBA"), format="PNG")
    save("gray.png", picture("L"), format="PNG")
    save("gray_alpha.png", picture("LA"), format="PNG")
    save("palette.png", picture("P"), format="PNG")
    save("gray16.png", picture("I;16"), format="PNG")
    save("interlaced.png", picture("RGB"), format="PNG", interlace=1)
    save("one_bit.png", picture("1"), format="PNG")


if __name__ == "__main__":
    main()
