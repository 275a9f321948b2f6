"""Write a folder of example images for `data=images`: scikit-learn's digits drawn as
RGB PNGs (dark ink on a tinted page, upscaled), one sub-folder per class, with the odd
files a real folder has (a JPEG, grey and palette images of other sizes, a text file
named .png, a truncated PNG, a stray note), which the run skips or converts and reports.

    .venv/bin/python scripts/make_example_images.py /tmp/digit_images [N] [SIZE]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def digit_image(ink: np.ndarray, size: int) -> Image.Image:
    """An 8x8 load_digits image (0..16) as a `size` square RGB picture."""
    grey = Image.fromarray((255 - ink / 16 * 255).astype(np.uint8))
    grey = grey.resize((size, size), Image.Resampling.BILINEAR)
    return Image.merge("RGB", (grey, grey.point(lambda v: int(v * 0.8)), grey))


def write_images(folder: Path, n: int, size: int = 64) -> None:
    """`n` digits (cycling through load_digits) as `folder/<digit>/<i>.png`."""
    digits = load_digits()
    for i in range(n):
        k = i % len(digits.images)
        target = folder / str(digits.target[k])
        target.mkdir(parents=True, exist_ok=True)
        digit_image(digits.images[k], size).save(target / f"{i:05d}.png")


def add_odd_files(folder: Path) -> None:
    digits = load_digits()
    first = digits.images[0]  # a 0
    digit_image(first, 90).save(folder / "0" / "scan.jpg", quality=90)
    digit_image(first, 40).convert("L").save(folder / "0" / "grey.png")
    digit_image(first, 48).convert("P").save(folder / "0" / "palette.png")
    (folder / "0" / "readme.png").write_text("not an image\n")
    whole = digit_image(first, 64)
    whole.save(folder / "0" / "whole.png")
    data = (folder / "0" / "whole.png").read_bytes()
    (folder / "0" / "whole.png").unlink()
    (folder / "0" / "cut.png").write_bytes(data[: len(data) // 3])
    (folder / "1" / "notes.txt").write_text("labelled by hand\n")


def main(folder: Path, n: int, size: int) -> None:
    write_images(folder, n, size)
    add_odd_files(folder)
    print(f"wrote {n} digits and 6 odd files to {folder}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    main(
        Path(args[0]),
        int(args[1]) if len(args) > 1 else 2000,
        int(args[2]) if len(args) > 2 else 64,
    )
