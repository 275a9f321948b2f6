"""Take a screenshot of the TensorBoard dashboard with headless Chromium (for the README).

    apt-get install chromium     # Debian's package; not needed by anything else here
    .venv/bin/python scripts/screenshot.py --runs runs --out docs/dashboard.png

Starts `tensorboard` on a free loopback port, waits until it has loaded the runs, points
Chromium at the page given by --tab (scalars, images, hparams, ...), and stops both.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = [  # a closed network: no background requests, no sandbox as root
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,1000",
    "--virtual-time-budget=15000",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_loaded(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/data/plugin/scalars/tags", timeout=5) as response:
                if len(response.read()) > 2:  # "{}" until the first run is loaded
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"TensorBoard at {url} loaded no runs in {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="docs/dashboard.png")
    parser.add_argument("--tab", default="scalars")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    url = f"http://127.0.0.1:{free_port()}"
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [
            str(tensorboard),
            "--logdir",
            args.runs,
            "--host",
            "127.0.0.1",
            "--port",
            url.rsplit(":", 1)[1],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_loaded(url)
        out = Path(args.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        with_profile = [f"--user-data-dir={out.parent / '.chromium-profile'}"]
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, *with_profile, f"--screenshot={out}", f"{url}/#{args.tab}"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(out.parent / ".chromium-profile", ignore_errors=True)
        print(f"wrote {out}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
