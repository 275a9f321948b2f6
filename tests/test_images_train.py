"""data=images end to end: the CNN sized by the data, model=timm or why not, the
checkpoint's normalisation and class names, and predict on a folder of images."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from images_helpers import add_odd_files, render

from litlab import check as check_module
from litlab.builders import build_data, build_module
from litlab.check import check
from litlab.checkpoints import load_checkpoint
from litlab.cli import main
from litlab.data.images import ImagesDataModule
from litlab.model import CNN
from litlab.predict import Predictor
from litlab.train import train

SHORT = ("trainer.max_epochs=12", "data.image_size=16", "data.num_workers=0", "logger=none")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    render(root / "digits", per_class=30, classes=(0, 1, 2, 3), size=20)
    add_odd_files(root / "digits")
    return root / "digits"


@pytest.fixture(scope="module")
def images_run(folder, tmp_path_factory):
    from litlab.config import compose

    runs = tmp_path_factory.mktemp("runs")
    words = [f"runs_dir={runs}", "data=images", f"data.path={folder}", *SHORT]
    return train(compose(words))


@pytest.mark.parametrize(("channels", "size"), [(1, 16), (3, 24)])
def test_the_cnn_sizes_itself_to_channels_image_size_and_classes(
    make_config, folder, channels, size
):
    composed = check(
        make_config(
            "data=images",
            f"data.path={folder}",
            f"data.channels={channels}",
            f"data.image_size={size}",
            "data.num_workers=0",
        )
    )
    dm = build_data(composed)
    module = build_module(composed, dm)
    assert isinstance(module.net, CNN) and module.net.in_shape == (channels, size)
    x, _ = next(iter(dm.train_dataloader()))
    assert module(dm.normalise(x.float() / 255)).shape == (len(x), 4)


@pytest.mark.slow
def test_an_images_run_learns_and_its_checkpoint_keeps_the_normalisation(images_run, folder):
    run_dir, metrics = images_run
    assert metrics["status"] == "finished"
    assert metrics["test/acc"] > 0.6, metrics  # four classes: chance is 0.25
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    state = checkpoint["ImagesDataModule"]
    data = json.loads((run_dir / "data.json").read_text())
    assert state["classes"] == ["0", "1", "2", "3"] == data["classes"]
    assert state["mean"] == data["mean"] and len(state["mean"]) == 3
    assert {Path(s["path"]).name for s in data["skipped"]} == {
        "text.png",
        "truncated.png",
        "notes.txt",
    }
    assert not any(p.name == "data.json" for p in folder.rglob("*"))


@pytest.mark.slow
def test_an_images_run_has_its_trivial_baseline(images_run, folder, make_config):
    """Every run says what ignoring the inputs scores: here the most frequent training
    class (the first of equals), counted by hand on the same split."""
    _, metrics = images_run
    dm = build_data(check(make_config("data=images", f"data.path={folder}", *SHORT)))
    train, test = dm.sets["train"].labels, dm.sets["test"].labels
    majority = int(np.argmax(np.bincount(train)))
    assert metrics["baseline/majority/acc"] == pytest.approx(np.mean(test == majority))
    assert {"baseline/majority/f1"} <= set(metrics)
    # one test row is the least gap the verdict can tell: it must know how many there are
    assert (metrics["val_rows"], metrics["test_rows"]) == (len(dm.sets["val"]), len(test))


@pytest.mark.slow
def test_predict_a_folder_gives_each_files_class_and_probabilities(images_run, folder, tmp_path):
    run_dir, _ = images_run
    best = run_dir / "checkpoints" / "best.ckpt"
    out = tmp_path / "out.csv"
    assert main(["predict", str(best), str(folder), str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    assert table["path"].tolist() == files
    probabilities = [f"probability {c}" for c in "0123"]
    assert list(table.columns) == ["path", "prediction", "probability", *probabilities, "problem"]
    bad = table[table["problem"] != ""]
    assert {Path(p).name for p in bad["path"]} == {"text.png", "truncated.png", "notes.txt"}
    good = table[table["problem"] == ""]
    # against the module's own forward on the images as the data module reads them
    predictor = Predictor.from_checkpoint(best)
    x = predictor.datamodule.inputs(good)
    with torch.no_grad():
        expected = torch.softmax(predictor.module(x), dim=1).numpy()
    np.testing.assert_allclose(good[probabilities].astype(float), expected, atol=1e-6)
    names = np.array(list("0123"))
    assert good["prediction"].astype(str).tolist() == names[expected.argmax(1)].tolist()
    # the normalisation is the checkpoint's: new images are read as the training ones
    stored = load_checkpoint(best)["ImagesDataModule"]
    assert predictor.datamodule.mean == stored["mean"] and predictor.datamodule.std == stored["std"]
    # one image, and a CSV of paths relative to its folder, give the same answers
    one = tmp_path / "one.csv"
    assert main(["predict", str(best), good["path"].iloc[0], str(one)]) == 0
    assert pd.read_csv(one)["probability 0"].item() == pytest.approx(
        float(good["probability 0"].iloc[0])
    )
    listed = folder / "list.csv"
    relative = [str(Path(p).relative_to(folder)) for p in good["path"]]
    pd.DataFrame({"path": [*relative, "../../escape.png"]}).to_csv(listed, index=False)
    try:
        assert main(["predict", str(best), str(listed), str(tmp_path / "listed.csv")]) == 0
    finally:
        listed.unlink()
    from_list = pd.read_csv(tmp_path / "listed.csv", keep_default_na=False)
    np.testing.assert_allclose(from_list[probabilities][:-1].astype(float), expected, atol=1e-6)
    assert from_list["problem"].iloc[-1] == "a link or path to outside the folder given, not read"


@pytest.mark.slow
def test_eval_of_an_images_checkpoint_gives_the_runs_test_metrics(images_run):
    run_dir, metrics = images_run
    assert main(["eval", str(run_dir / "checkpoints" / "best.ckpt")]) == 0
    evaluated = json.loads((run_dir / "checkpoints" / "best.eval.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"])


CRAFTED = {
    "image_size": ({"image_size": 60000}, "image_size=60000: must be 4 to 1024 pixels"),
    "channels": ({"channels": 7}, "channels=7: must be 1 (grey) or 3 (RGB)"),
    "mean": ({"mean": [0.1]}, "mean, std: 3 finite numbers each, std > 0"),
    "std": ({"std": [1.0, 0.0, 1.0]}, "mean, std: 3 finite numbers each, std > 0"),
    "classes": ({"classes": ["0", "0", "1", "2"]}, "classes: 4 given; two or more different"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", CRAFTED)
def test_a_checkpoints_crafted_image_state_is_refused_in_one_line(
    images_run, folder, tmp_path, capsys, name
):
    """Someone else's checkpoint sized the network from its stored image_size (60000:
    an 86 GB layer, a traceback) and normalised with a mean of the wrong length."""
    run_dir, _ = images_run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    change, said = CRAFTED[name]
    checkpoint["ImagesDataModule"] |= change
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    capsys.readouterr()
    assert main(["predict", str(crafted), str(folder), str(tmp_path / "out.csv")]) == 2
    (line,) = capsys.readouterr().err.splitlines()[1:]
    assert line.startswith(f"  {crafted}: its data state cannot be read") and said in line
    assert not (tmp_path / "out.csv").exists()


# model=timm
BUILD = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
BROKEN_TIMM = 'raise RuntimeError("operator torchvision::nms does not exist")\n'


def timm_words(folder: Path, runs: Path) -> list[str]:
    return ["train", "data=images", f"data.path={folder}", "model=timm", f"runs_dir={runs}"]


def test_model_timm_that_fails_to_import_is_one_line_exit_2_before_any_folder(
    folder, tmp_path, monkeypatch, capsys
):
    fake = tmp_path / "site"
    (fake / "timm").mkdir(parents=True)
    (fake / "timm" / "__init__.py").write_text(BROKEN_TIMM)
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    assert main(timm_words(folder, tmp_path / "runs")) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "litlab: model (configs/model/timm.yaml) needs the timm package, installed here but "
        "failing to import (RuntimeError: operator torchvision::nms does not exist): "
        f'pip install -e ".[vision]" with a torchvision built for this torch (torch '
        f"{torch.__version__}, {BUILD})"
    )
    assert not (tmp_path / "runs").exists()


def test_model_timm_not_installed_says_what_to_install(folder, tmp_path, monkeypatch, capsys):
    packages = check_module.OPTIONAL_PACKAGES | {"Timm": ("no_such_timm", "vision")}
    monkeypatch.setattr(check_module, "OPTIONAL_PACKAGES", packages)
    assert main(timm_words(folder, tmp_path / "runs")) == 2
    assert capsys.readouterr().err.strip() == (
        "litlab: model (configs/model/timm.yaml) needs the no_such_timm package, not "
        'installed here: pip install -e ".[vision]"'
    )
    assert not (tmp_path / "runs").exists()


def _timm_imports() -> str:
    try:
        importlib.import_module("timm")
    except Exception as exc:  # whatever stops it, the test says it and skips
        return f"{type(exc).__name__}: {exc}"
    return ""


@pytest.mark.slow
@pytest.mark.skipif(
    bool(_timm_imports()),
    reason=f"timm does not import here ({_timm_imports()}); to run this test: "
    'pip install -e ".[vision]" with a torchvision built for the installed torch',
)
def test_model_timm_resnet18_trains_briefly(folder, make_config):
    words = ["data=images", f"data.path={folder}", "model=timm", "model.name=resnet18"]
    run_dir, metrics = train(make_config(*words, *SHORT[1:], "trainer.max_epochs=1"))
    assert metrics["status"] == "finished"
    state = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert state["net.net.fc.weight"].shape == (4, 512)  # resnet18's head, for four classes


@pytest.mark.slow
def test_a_resumed_images_run_ends_with_the_weights_of_an_uninterrupted_one(folder, make_config):
    from litlab.rundirs import compose
    from litlab.train import run

    words = [
        "data=images",
        f"data.path={folder}",
        "data.image_size=12",
        "data.num_workers=0",
        "data.batch_size=16",  # several shuffled batches an epoch: their order must resume
        "data.augment.flip=true",
        "data.augment.brightness=0.3",
        "logger=none",
        "trainer.check_val_every_n_epoch=2",
    ]
    straight_dir, _ = run(make_config(*words, "trainer.max_epochs=4", "name=straight"))
    first_dir, _ = run(make_config(*words, "trainer.max_epochs=2", "name=first"))
    resumed_dir, _ = run(compose([f"resume={first_dir}", "trainer.max_epochs=4"]))
    assert resumed_dir == first_dir
    straight = torch.load(straight_dir / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(resumed_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in straight["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][key], value, atol=1e-6), key


def test_per_class_probabilities_of_two_classes_are_one_minus_p_and_p():
    from litlab.module import ClassifierModule

    torch.manual_seed(0)
    module = ClassifierModule(torch.nn.Linear(3, 1), optimizer=None, num_classes=2).eval()
    x = torch.randn(5, 3)
    columns = module.prediction_columns(x, per_class=True)
    p = torch.sigmoid(module(x)).detach().numpy().ravel()
    np.testing.assert_allclose(columns["probabilities"], np.stack([1 - p, p], axis=1), rtol=1e-6)
    np.testing.assert_allclose(columns["probability"], p, rtol=1e-6)
    assert "probabilities" not in module.prediction_columns(x)  # tables keep their columns


@pytest.mark.slow
def test_two_ddp_processes_test_an_images_checkpoint_as_one_process_does(folder, tmp_path):
    import subprocess

    from litlab.predict import evaluate_checkpoint

    words = ["data=images", f"data.path={folder}", *SHORT, "trainer.max_epochs=2"]
    words += ["trainer=ddp_cpu", "trainer.devices=2", "runs_dir=runs"]
    done = subprocess.run(
        [sys.executable, "-m", "litlab", "train", *words],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "images").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # 19 test images over 2 ranks: torch's DistributedSampler would test one of them twice
    single = evaluate_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    same = ImagesDataModule(str(folder), image_size=16, num_workers=0)
    same.setup()
    assert len(same.sets["test"]) == 19
    assert metrics["test/acc"] == single["test/acc"]
    assert metrics["test/loss"] == pytest.approx(single["test/loss"], rel=1e-5)
