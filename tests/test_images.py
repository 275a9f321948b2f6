"""data=images: a folder of class sub-folders or a CSV of paths, decoded from disk,
normalised by the training images, odd files skipped and named, augmented on the device."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from images_helpers import add_odd_files, decoded, render

from litlab.builders import build_data
from litlab.check import check
from litlab.cli import main
from litlab.data.augment import Augment
from litlab.data.images import ImagesDataModule, default_workers
from litlab.data.split import split_rows

SIZE = 12


def module(path: Path, **kwargs) -> ImagesDataModule:
    dm = ImagesDataModule(str(path), image_size=SIZE, num_workers=0, **kwargs)
    dm.setup()
    return dm


def listing(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "digits"
    render(folder, per_class=20)
    return folder


def test_a_folder_gives_classes_a_stratified_split_and_skips_what_it_cannot_read(
    digits_folder, tmp_path
):
    odd = add_odd_files(digits_folder)
    before = listing(digits_folder)
    dm = module(digits_folder)
    assert dm.classes == ["0", "1", "2"] and dm.task == "multiclass" and dm.num_outputs == 3
    skipped = {Path(s["path"]).name: s["why"] for s in dm.skipped}
    assert set(skipped) == {"text.png", "truncated.png", "notes.txt"}
    assert skipped["notes.txt"] == "not an image file (.txt ending)"
    assert skipped["text.png"].startswith("cannot be decoded (UnidentifiedImageError")
    assert "np.str_" not in skipped["text.png"] and "text.png" in skipped["text.png"]
    assert skipped["truncated.png"].startswith("cannot be decoded")
    used = {Path(p).name for s in dm.sets.values() for p in s.paths}
    assert {"rgba.png", "palette.png", "grey.png", "wide.jpg", "small.bmp", "frame.gif"} <= used
    # the split is split.py's, over the usable files in sorted order, stratified
    usable = sorted(
        (p for p in digits_folder.rglob("*") if p.is_file() and p.name not in skipped),
        key=lambda p: (p.parent.name, str(p)),
    )
    labels = np.array([int(p.parent.name) for p in usable])
    rows = split_rows(len(usable), 0.15, 0.15, seed=0, labels=labels)
    for split, chosen in zip(("train", "val", "test"), rows, strict=True):
        assert list(dm.sets[split].paths) == [str(usable[i]) for i in chosen]
    # the run's report names every skipped file; nothing is written beside the images
    run = tmp_path / "run"
    run.mkdir()
    dm.report(run)
    data = json.loads((run / "data.json").read_text())
    assert {Path(s["path"]).name for s in data["skipped"]} == set(skipped)
    assert data["classes"] == ["0", "1", "2"]
    assert listing(digits_folder) == before
    assert len(odd) == 9


@pytest.mark.parametrize("channels", [1, 3])
def test_normalisation_is_numpys_mean_and_std_of_the_training_images(digits_folder, channels):
    add_odd_files(digits_folder)
    dm = module(digits_folder, channels=channels)
    pixels = np.stack([decoded(Path(p), SIZE, channels) for p in dm.sets["train"].paths])
    np.testing.assert_allclose(dm.mean, pixels.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(dm.std, pixels.std(axis=(0, 1, 2)), rtol=1e-7)
    # a validation batch on the device: the decoded images, normalised, nothing else
    x, y = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (len(x), channels, SIZE, SIZE)
    dm.trainer = SimpleNamespace(training=False, current_epoch=0)
    out, _ = dm.on_after_batch_transfer((x, y), 0)
    first = decoded(Path(dm.sets["val"].paths[0]), SIZE, channels)
    expected = (first - np.array(dm.mean)) / np.array(dm.std)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_train_val_test_folders_are_the_splits_and_a_missing_val_is_split_off(tmp_path):
    for part, n in (("train", 10), ("test", 4)):
        render(tmp_path / "split" / part, per_class=n)
    dm = module(tmp_path / "split")
    assert [len(dm.sets[p]) for p in ("train", "val", "test")] == [25, 5, 12]
    assert all("/test/" in p for p in dm.sets["test"].paths)
    assert all("/train/" in p for p in dm.sets["val"].paths)
    render(tmp_path / "split" / "val", per_class=2)
    dm = module(tmp_path / "split")
    assert [len(dm.sets[p]) for p in ("train", "val", "test")] == [30, 6, 12]


def test_a_csv_of_paths_gives_the_folder_forms_split(digits_folder):
    folder_dm = module(digits_folder)
    files = sorted(digits_folder.rglob("*.png"), key=lambda p: (p.parent.name, str(p)))
    lines = ["file,digit", *(f"{p.relative_to(digits_folder)},{p.parent.name}" for p in files)]
    lines += ["../elsewhere.png,1", f"{files[0]},1", ",2"]  # out of its folder, absolute, empty
    (digits_folder / "list.csv").write_text("\n".join(lines) + "\n")
    dm = module(digits_folder / "list.csv", image_column="file", target="digit")
    assert dm.classes == folder_dm.classes
    for split in ("train", "val", "test"):
        assert list(dm.sets[split].paths) == list(folder_dm.sets[split].paths)
    whys = [s["why"] for s in dm.skipped]
    assert whys.count("a path outside the CSV's folder (paths are relative to it, within it)") == 2
    assert "no file" in whys


def test_a_link_out_of_the_data_folder_is_not_followed(digits_folder, tmp_path):
    outside = tmp_path / "private"
    render(outside, per_class=3, classes=(1,))
    (digits_folder / "1" / "secret.png").symlink_to(outside / "1" / os.listdir(outside / "1")[0])
    (digits_folder / "9").symlink_to(outside / "1")
    (digits_folder / "train").symlink_to(outside)  # not taken for a split folder either
    dm = module(digits_folder)
    assert dm.classes == ["0", "1", "2"]
    whys = {Path(s["path"]).name: s["why"] for s in dm.skipped}
    assert whys == {
        "secret.png": "a link to outside data.path",
        "9": "a link to a folder outside data.path, not followed",
        "train": "a link to a folder outside data.path, not followed",
    }


def run_cli(capsys, *words: str) -> tuple[int, str]:
    status = main(["train", *words])
    return status, capsys.readouterr().err


def test_no_usable_image_or_too_few_in_a_class_is_one_line_exit_2(tmp_path, capsys):
    runs = tmp_path / "runs"
    empty = tmp_path / "empty" / "cats"
    empty.mkdir(parents=True)
    (empty / "a.png").write_text("no image")
    status, err = run_cli(capsys, "data=images", f"data.path={empty.parent}", f"runs_dir={runs}")
    assert status == 2
    assert err.splitlines() == [  # the images' fault, not the config's: one line
        f"litlab: {empty.parent}: no usable image (1 image files tried; 1 cannot be "
        "decoded); give a folder of <class>/<image> files (.png, .jpg, ...) or a CSV of "
        "paths and labels"
    ]
    render(tmp_path / "few", per_class=10, classes=(0, 1))
    render(tmp_path / "few", per_class=2, classes=(2,))
    status, err = run_cli(
        capsys, "data=images", f"data.path={tmp_path / 'few'}", f"runs_dir={runs}"
    )
    assert status == 2
    assert err.startswith(f"litlab: {tmp_path / 'few'}: too few usable training images: class '2' ")
    assert "has 2; each class needs at least 3" in err and len(err.splitlines()) == 1
    render(tmp_path / "one", per_class=10, classes=(5,))
    status, err = run_cli(
        capsys, "data=images", f"data.path={tmp_path / 'one'}", f"runs_dir={runs}"
    )
    assert status == 2
    assert err.splitlines() == [
        f"litlab: {tmp_path / 'one'}: one class ('5'); classification needs images of two "
        "classes or more, a sub-folder (or a label) each"
    ]
    assert not runs.exists()


def test_bad_values_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"channels=2: must be 1 \(grey\) or 3 \(RGB\)"):
        ImagesDataModule(str(tmp_path), channels=2)
    with pytest.raises(ValueError, match=r"augment\.blur: no such augmentation; the keys are crop"):
        ImagesDataModule(str(tmp_path), augment={"blur": 1})
    with pytest.raises(ValueError, match=r"augment.rotate=90: must be 0 to 45"):
        ImagesDataModule(str(tmp_path), augment={"rotate": 90})
    with pytest.raises(ValueError, match=r"augment.crop=1: must be 0 \(off\) or above 0"):
        ImagesDataModule(str(tmp_path), augment={"crop": 1})


def test_the_config_reaches_the_module(make_config, digits_folder):
    composed = check(
        make_config(
            "data=images",
            f"data.path={digits_folder}",
            "data.image_size=10",
            "data.channels=1",
            "data.num_workers=0",
            "data.batch_size=7",
            "data.augment.flip=true",
            "data.image_column=file",
            "data.target=digit",
            "data.val_fraction=0.2",
            "data.test_fraction=0.25",
            "data.random_state=3",
        ),
        build=False,
    )
    dm = build_data(composed)
    assert (dm.image_size, dm.channels, dm.num_workers, dm.batch_size) == (10, 1, 0, 7)
    assert dm.augment == Augment(flip=True)
    assert (dm.image_column, dm.target, dm.seed) == ("file", "digit", 3)
    assert len(dm.sets["test"]) == 15 and len(dm.sets["val"]) == 12  # of 60


def test_loaders_stream_with_workers_and_leave_none_behind(digits_folder):
    dm = module(digits_folder)
    assert dm.num_workers == 0 and default_workers() == max(
        0, min(4, len(os.sched_getaffinity(0)) - 1)
    )
    plain = [b for b in dm.val_dataloader()]
    dm.num_workers = 2
    loader = dm.val_dataloader()
    assert loader.persistent_workers and not loader.pin_memory
    for a, b in zip(plain, loader, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    del loader
    gc.collect()
    assert multiprocessing.active_children() == []


def test_loaders_pin_memory_for_a_gpu_only(digits_folder):
    dm = module(digits_folder)
    assert not dm.train_dataloader().pin_memory  # no trainer: the CPU
    gpu = SimpleNamespace(root_device=torch.device("cuda", 0))
    dm.trainer = SimpleNamespace(strategy=gpu, global_rank=0, world_size=1)
    assert dm.train_dataloader().pin_memory and dm.test_dataloader().pin_memory
    assert not dm.train_dataloader().persistent_workers  # no workers to keep


def test_shards_cover_evaluation_once_and_training_in_equal_seeded_shares():
    from litlab.data.image_files import shard

    evaluated = [list(shard(11, 0, False, rank, 3)) for rank in range(3)]
    assert sorted(i for share in evaluated for i in share) == list(range(11))  # each once
    trained = [shard(11, 0, True, rank, 3) for rank in range(3)]
    shares = [list(sampler) for sampler in trained]
    assert [len(s) for s in shares] == [3, 3, 3] and len({i for s in shares for i in s}) == 9
    assert list(shard(11, 0, True)) == list(shard(11, 0, True))  # seeded
    later = shard(11, 0, True)
    later.set_epoch(1)
    assert sorted(later) == list(range(11)) and list(later) != list(shard(11, 0, True))


def test_two_classes_are_binary_with_float_labels(tmp_path):
    render(tmp_path / "two", per_class=10, classes=(3, 7))
    dm = module(tmp_path / "two")
    x, y = next(iter(dm.train_dataloader()))
    assert dm.task == "binary" and dm.num_outputs == 1 and dm.module_kwargs() == {"num_classes": 2}
    assert y.dtype == torch.float32 and y.shape == (len(x), 1)


# augmentation
def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def draws(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ALL = Augment(crop=0.5, flip=True, rotate=15, brightness=0.3, contrast=0.3)


def test_augmentation_is_deterministic_under_a_seed_and_off_by_default():
    x = images()
    assert not Augment().active
    assert torch.equal(Augment()(x, draws(0)), x)
    first, again, other = ALL(x, draws(1)), ALL(x, draws(1)), ALL(x, draws(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first, x) and first.shape == x.shape
    assert first.min() >= 0 and first.max() <= 1


def test_each_augmentation_does_what_it_says():
    x = images()
    flipped = Augment(flip=True)(x, draws(0))
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, x, strict=True)]
    kept = [torch.equal(f, i) for f, i in zip(flipped, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and any(mirrored) and any(kept)
    bright = Augment(brightness=0.3)(x * 0.5, draws(0)) / (x * 0.5)  # one factor an image
    factors = bright.flatten(1)
    assert torch.allclose(factors, factors[:, :1], atol=1e-5)
    assert ((factors >= 0.7) & (factors <= 1.3)).all()
    grey = x * 0.5 + 0.25  # contrast around each image's mean keeps the mean
    contrasted = Augment(contrast=0.3)(grey, draws(0))
    assert torch.allclose(contrasted.mean(dim=(1, 2, 3)), grey.mean(dim=(1, 2, 3)), atol=1e-5)
    flat = torch.full((4, 1, SIZE, SIZE), 0.4)  # a turned or cropped plain image stays plain
    moved = Augment(crop=0.5, rotate=30)(flat, draws(0))
    assert torch.allclose(moved, flat, atol=1e-6)


def test_the_affine_grid_of_no_crop_and_no_turn_is_the_image():
    x = images()  # checks the grid's convention (align_corners) against the identity
    assert torch.allclose(Augment(rotate=1e-9)._move(x, draws(0)), x, atol=1e-5)


def test_only_training_batches_are_augmented_the_same_way_each_run(digits_folder):
    dm = module(digits_folder, augment={"crop": 0.5, "flip": True, "brightness": 0.3})
    batch = next(iter(dm.train_dataloader()))
    plain = dm.normalise(batch[0].float() / 255)
    dm.trainer = SimpleNamespace(training=False, current_epoch=0)
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)[0], plain)  # val, test, sanity check
    dm.trainer = SimpleNamespace(training=True, current_epoch=0)
    first = [dm.on_after_batch_transfer(batch, 0)[0] for _ in range(2)]
    assert not torch.equal(first[0], plain) and not torch.equal(first[0], first[1])
    again = module(digits_folder, augment={"crop": 0.5, "flip": True, "brightness": 0.3})
    again.trainer = SimpleNamespace(training=True, current_epoch=0)
    assert all(torch.equal(again.on_after_batch_transfer(batch, 0)[0], f) for f in first)


def test_the_docs_section_names_every_key_of_data_images():
    import yaml

    page = (Path(__file__).resolve().parents[1] / "docs/your-data.md").read_text()
    section = page[page.index("## Your own images") :].split("\n## ")[0]
    config = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "configs/data/images.yaml").read_text()
    )
    keys = [k for k in config if k not in ("defaults", "_target_", "augment")]
    keys += [f"augment.{k}" for k in config["augment"]]
    assert [k for k in keys if f"`data.{k}`" not in section] == []


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    from litlab.data.image_files import decode

    ramp = np.linspace(0, 255, 16 * 16).reshape(16, 16).round().astype(np.uint8)
    Image.fromarray(ramp.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 0..65535
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    for channels in (1, 3):
        pixels = decode(tmp_path / "deep.png", channels, 16)
        assert np.array_equal(pixels, np.repeat(ramp[..., None], channels, axis=2))


def test_a_photo_is_turned_upright_as_its_exif_orientation_says(tmp_path):
    from PIL import Image

    from litlab.data.image_files import decode

    stored = np.zeros((8, 16), np.uint8)  # as the camera stored it: dark left, light right
    stored[:, 8:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation 6: shown turned 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    pixels = decode(tmp_path / "phone.png", 1, 8)[..., 0]
    upright = np.rot90(stored, k=-1)  # (16, 8): dark on top, light below
    expected = np.asarray(Image.fromarray(upright).resize((8, 8), Image.Resampling.BILINEAR))
    assert np.array_equal(pixels, expected) and pixels[0].max() == 0 and pixels[-1].min() == 255
