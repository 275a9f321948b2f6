"""Folders of images for the image tests, rendered from scikit-learn's digits (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

DIGITS = load_digits()


def digit(index: int, size: int = 16, mode: str = "RGB") -> Image.Image:
    """Digit `index` of load_digits as dark ink on a light page, `size` square, in `mode`."""
    ink = DIGITS.images[index % len(DIGITS.images)] / 16
    grey = Image.fromarray((255 - ink * 255).astype(np.uint8)).resize((size, size))
    if mode == "RGB":  # tinted, so the three channels differ
        r, g, b = (grey.point(lambda v, k=k: int(v * k)) for k in (1.0, 0.8, 0.6))
        return Image.merge("RGB", (r, g, b))
    return grey.convert(mode)


def render(
    folder: Path, per_class: int, classes: tuple[int, ...] = (0, 1, 2), size: int = 16
) -> list[Path]:
    """`folder/<class>/<i>.png`, `per_class` digits of each class; the files written."""
    written = []
    for label in classes:
        indices = np.flatnonzero(DIGITS.target == label)[:per_class]
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for i in indices:
            path = folder / str(label) / f"{i}.png"
            digit(int(i), size).save(path)
            written.append(path)
    return written


def add_odd_files(folder: Path, label: int = 0) -> dict[str, Path]:
    """Files of a real-world folder in class `label`: other modes, sizes and formats that
    decode, and three that do not (text named .png, a truncated PNG, a stray note)."""
    index = int(np.flatnonzero(DIGITS.target == label)[-1])
    target = folder / str(label)
    good = {
        "rgba.png": digit(index, 20, "RGBA"),
        "palette.png": digit(index, 12, "P"),
        "grey.png": digit(index, 24, "L"),
        "wide.jpg": digit(index, 16).resize((40, 16)),
        "small.bmp": digit(index, 8),
        "frame.gif": digit(index, 16, "P"),
    }
    files = {}
    for name, image in good.items():
        image.save(target / name)
        files[name] = target / name
    (target / "text.png").write_text("not an image\n")
    whole = target / "whole.png"
    digit(index, 32).save(whole)
    (target / "truncated.png").write_bytes(whole.read_bytes()[:150])
    whole.unlink()
    (target / "notes.txt").write_text("labels checked by hand\n")
    files |= {n: target / n for n in ("text.png", "truncated.png", "notes.txt")}
    return files


def decoded(path: Path, size: int, channels: int = 3) -> np.ndarray:
    """The reference decoding, with Pillow directly: (size, size, channels) in [0, 1]."""
    mode = "RGB" if channels == 3 else "L"
    with Image.open(path) as image:
        image.draft(mode, (size, size))  # as litlab: a JPEG decodes at a reduced scale
        square = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.float64).reshape(size, size, channels) / 255
