"""Take a screenshot of the TensorBoard dashboard, or of the MLflow UI, with headless
Chromium (for the README).

    apt-get install chromium     # Debian's package; not needed by anything else here
    .venv/bin/python scripts/screenshot.py --runs runs --out docs/dashboard.png
    .venv/bin/python scripts/screenshot.py --mlflow sqlite:///runs/mlflow.db \
        --out docs/mlflow-ui.png

Starts `tensorboard` (or `mlflow ui`, as `make mlflow-ui` does) on a free loopback port,
waits until it has loaded the runs, points Chromium at the page given by --tab
(scalars, images, hparams, ...; for MLflow, the newest run's final loss picture), and
stops both.
"""

from __future__ import annotations

import argparse
import json
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


def mlflow_api(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url + path, data, headers), timeout=10) as r:
        return json.loads(r.read())


def newest_mlflow_picture(url: str, timeout: float = 300) -> str:
    """The page of the newest run's final loss picture, once the MLflow UI answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=5).close()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"the MLflow UI at {url} did not answer: {exc}") from None
            time.sleep(0.5)
    runs = mlflow_api(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": ["1"]})["runs"]
    run = runs[0]["info"]  # newest first
    listing = f"/api/2.0/mlflow/artifacts/list?run_id={run['run_id']}&path=final/loss"
    files = mlflow_api(url, listing)
    picture = files["files"][-1]["path"]
    return f"{url}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}/artifacts/{picture}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--mlflow", metavar="STORE", help="the MLflow UI over this store instead")
    parser.add_argument("--out", default="docs/dashboard.png")
    parser.add_argument("--tab", default="scalars")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    url = f"http://127.0.0.1:{free_port()}"
    port = url.rsplit(":", 1)[1]
    bin_dir = Path(sys.executable).parent
    if args.mlflow:
        command = [str(bin_dir / "mlflow"), "ui", "--backend-store-uri", args.mlflow]
        command += ["--workers", "1"]
    else:
        command = [str(bin_dir / "tensorboard"), "--logdir", args.runs]
    command += ["--host", "127.0.0.1", "--port", port]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if args.mlflow:
            page = newest_mlflow_picture(url)
        else:
            wait_until_loaded(url)
            page = f"{url}/#{args.tab}"
        out = Path(args.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        with_profile = [f"--user-data-dir={out.parent / '.chromium-profile'}"]
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, *with_profile, f"--screenshot={out}", page],
            check=True,
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(out.parent / ".chromium-profile", ignore_errors=True)
        print(f"wrote {out}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
