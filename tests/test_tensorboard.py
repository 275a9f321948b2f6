"""End to end: a real TensorBoard server, read back over its HTTP API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from litlab.train import train

TENSORBOARD = Path(sys.executable).with_name("tensorboard")


class Server:
    def __init__(self, logdir: Path):
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        command = [str(TENSORBOARD), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", port]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def get(self, path: str, body: dict | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_for(self, path: str, ready, timeout: float = 90.0) -> object:
        """Poll `path` until `ready(answer)`: the server loads event files in the background."""
        deadline, answer = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                answer = self.get(path)
                if ready(answer):
                    return answer
            except OSError:  # not listening yet
                pass
            time.sleep(0.5)
        raise AssertionError(f"{path} never ready; last answer: {answer}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def server():
    servers = []

    def start(logdir: Path) -> Server:
        servers.append(Server(logdir))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.mark.slow
def test_dashboard_shows_scalars_images_hparams_and_config(make_config, tmp_path, server):
    words = [
        "trainer.max_epochs=100",
        "trainer.check_val_every_n_epoch=25",
        "trainer.log_every_n_steps=10",
    ]
    run_dir, metrics = train(make_config(*words, "callbacks.dashboard.every_n_epochs=25"))
    run = str(run_dir.relative_to(tmp_path / "runs"))
    tb = server(tmp_path / "runs")
    tb.wait_for("/data/runs", lambda runs: run in runs)
    tags = tb.wait_for("/data/plugin/scalars/tags", lambda t: "test/acc" in t.get(run, {}))[run]
    assert {
        "train/loss",
        "val/loss",
        "val/acc",
        "val/auroc",
        "test/acc",
        "lr-Adam",
    } <= set(tags)
    assert not any(tag.startswith("baseline/") for tag in tags)  # HParams columns instead

    def points(tag: str) -> list:
        return tb.get(f"/data/plugin/scalars/scalars?run={run}&tag={tag}")

    assert [p[1] for p in points("train/loss")] == list(
        range(9, 100, 10)
    )  # (wall time, step, value)
    assert len(points("val/loss")) == 4
    assert points("test/acc")[-1][2] == pytest.approx(metrics["test/acc"])

    images = tb.get("/data/plugin/images/tags")[run]
    assert {
        "schedule/learning_rate",
        "data/train",
        "pictures/boundary",
        "final/boundary",
        "final/loss",
    } <= set(images)
    assert images["pictures/boundary"]["samples"] >= 1
    boundary = tb.get(f"/data/plugin/images/images?run={run}&tag=pictures/boundary&sample=0")
    assert [image["step"] for image in boundary][:4] == [25, 50, 75, 100]

    texts = tb.get("/data/plugin/text/tags")[run]
    assert "config/text_summary" in texts  # add_text("config") as the text plugin names it

    experiment = tb.get("/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {info["name"] for info in experiment["hparamInfos"]}
    assert {
        "optimizer.lr",
        "optimizer._target_",
        "model.activation",
        "seed",
        "data.batch_size",
        "choice/optimizer",
        "baseline/svc/acc",
        "baseline/majority/acc",  # the trivial baseline beside the fitted ones
    } <= hparams
    ranked = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert "test/acc" in ranked
