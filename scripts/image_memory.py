"""Peak memory of one data=images epoch, against the number of images: the images are
streamed from disk, so the peak must not grow with their number.

    .venv/bin/python scripts/image_memory.py            # 1,000 and 10,000 images
    .venv/bin/python scripts/image_memory.py 500 2000   # other counts

Each count is a folder of 64x64 RGB PNGs of scikit-learn's digits (upscaled, ten class
folders) in a temporary folder, trained on for one epoch by `litlab train` in a fresh
process. Printed: the peak resident memory of that process (the training loop), and of
its largest DataLoader worker (both from getrusage, in MiB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from make_example_images import write_images  # this folder, on sys.path when run

SIZE = 64
WORKERS = 2

CHILD = """
import gc, json, resource, sys
from litlab.config import compose
from litlab.train import train
run_dir, metrics = train(compose(sys.argv[1:]))
gc.collect()  # the loaders' persistent workers end with their iterators
peak = lambda who: resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"main": peak(resource.RUSAGE_SELF), "worker": peak(resource.RUSAGE_CHILDREN),
                  "status": metrics["status"]}))
"""


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, n, SIZE)
        words = [
            "data=images",
            f"data.path={folder}",
            f"data.image_size={SIZE}",
            f"data.num_workers={WORKERS}",
            "trainer.max_epochs=1",
            "logger=none",
            f"runs_dir={Path(tmp) / 'runs'}",
        ]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, *words], capture_output=True, text=True, check=False
        )
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return result | {"seconds": time.perf_counter() - start}


def main(counts: list[int]) -> None:
    print(f"{SIZE}x{SIZE} RGB PNGs, one epoch, data.num_workers={WORKERS}")
    print("| images | peak RSS, training process (MiB) | peak RSS, largest worker (MiB) |")
    print("|---|---|---|")
    for n in counts:
        found = measure(n)
        print(f"| {n:,} | {found['main']:.0f} | {found['worker']:.0f} |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 10_000])
