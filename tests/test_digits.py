"""The digits images with a small CNN: data, network, ten-class classifier, pictures, predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import check_task_cell
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import SVC

from litlab import figures
from litlab.data import DigitsDataModule
from litlab.data.digits import PIXELS, read_images, shifted
from litlab.model import CNN, MLP
from litlab.predict import Predictor
from litlab.train import prepare, train


def test_images_are_scaled_stratified_and_seeded():
    dm = DigitsDataModule()
    dm.setup()
    x, y = dm.train
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert x.min() == 0 and x.max() == 1  # load_digits' 0..16, divided by 16
    assert sum(len(part[1]) for part in (dm.train, dm.val, dm.test)) == 1797
    shares = torch.bincount(dm.test[1], minlength=10) / len(dm.test[1])
    assert (shares - 0.1).abs().max() < 0.02  # every class about a tenth of the test set
    again = DigitsDataModule()
    again.setup()
    assert torch.equal(again.test[0], dm.test[0])


def test_shift_moves_pixels_and_blanks_the_rest():
    image = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    assert shifted(image, 1, 0)[0, 0].tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]
    assert shifted(image, 0, -1)[0, 0].tolist() == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]


def test_cnn_and_mlp_read_images():
    assert CNN(64, 10, channels=[4, 8])(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert MLP(64, 10, hidden=[16])(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="in_features=2: a CNN needs square images"):
        CNN(2, 1, channels=[4])


@pytest.mark.slow
def test_default_digits_job_reaches_98_percent_and_the_svc(make_config, tmp_path):
    run_dir, metrics = train(make_config("experiment=digits"))
    dm = DigitsDataModule()
    dm.setup()
    (x_train, y_train), (x_test, y_test) = dm.train, dm.test
    svc = SVC().fit(x_train.flatten(1).numpy(), y_train.numpy())
    svc_acc = svc.score(x_test.flatten(1).numpy(), y_test.numpy())
    assert metrics["test/acc"] >= 0.98 and metrics["test/acc"] >= svc_acc - 0.01, (metrics, svc_acc)
    assert metrics["baseline/svc/acc"] == pytest.approx(svc_acc)
    check_task_cell("digits", metrics)  # the README's figures are this run's
    # the run's metrics, recomputed with scikit-learn from the predictions of best.ckpt
    predictor = Predictor.from_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    rows = pd.DataFrame(x_test.flatten(1).numpy() * 16, columns=PIXELS)
    predicted = predictor.predict(rows)["prediction"].to_numpy()
    assert metrics["test/acc"] == pytest.approx(accuracy_score(y_test, predicted))
    assert metrics["test/f1"] == pytest.approx(
        f1_score(y_test, predicted, average="macro"), abs=1e-6
    )
    plots = {p.name for p in (run_dir / "plots").iterdir()}
    assert {"test_images.png", "confusion_matrix.png", "filters.png", "loss.png"} <= plots
    # a PNG of a test image, larger and dark on light, reads back as that 8x8 image
    image = x_test[0, 0].numpy()
    page = Image.fromarray(((1 - image) * 255).astype(np.uint8)).resize(
        (32, 32), Image.Resampling.NEAREST
    )
    page.save(tmp_path / "digit.png")
    pixels = read_images(tmp_path / "digit.png")
    np.testing.assert_allclose(pixels.to_numpy().reshape(8, 8), image * 16, atol=16 / 255)
    assert predictor.predict(pixels)["prediction"].item() == predicted[0]


def test_csv_rows_of_64_values_with_or_without_a_header(tmp_path):
    values = load_digits().data[:3]
    pd.DataFrame(values, columns=PIXELS).to_csv(tmp_path / "with.csv", index=False)
    pd.DataFrame(values).to_csv(tmp_path / "without.csv", index=False, header=False)
    for name in ("with.csv", "without.csv"):
        assert read_images(tmp_path / name).to_numpy().tolist() == values.tolist()


def test_mlp_on_the_same_images_builds(make_config):
    run = prepare(make_config("experiment=digits", "model=mlp"))
    assert run.module.task == "multiclass" and run.module.net(torch.zeros(2, 1, 8, 8)).shape == (
        2,
        10,
    )


def test_image_figures():
    images = np.zeros((3, 8, 8))
    grid = figures.image_grid(images, np.array([1, 2, 3]), np.array([1, 0, 3]))
    titles = [(ax.get_title(), ax.title.get_color()) for ax in grid.axes if ax.get_title()]
    # the true label, and in brackets the prediction where wrong
    assert titles == [("1", "black"), ("0 (2)", "red"), ("3", "black")]
    matrix = np.array([[5, 1], [0, 4]])
    texts = [t.get_text() for t in figures.confusion(matrix).axes[0].texts]
    assert texts == ["5", "1", "0", "4"]  # zeros shown too
    assert len([ax for ax in figures.filters(np.zeros((6, 1, 3, 3))).axes if ax.images]) == 6
