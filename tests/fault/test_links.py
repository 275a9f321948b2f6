"""litlab never writes through a link: a link planted in a run folder (by a shared
folder's other user, or a copied run) is replaced or refused, and what it points to is
left as it was."""

from __future__ import annotations

import errno
import shutil

import pytest
from matplotlib.figure import Figure

from litlab.checkpoints import write_text
from litlab.cli import main
from litlab.dashboard import add_figure
from litlab.rundirs import lock_run_dir, subfolder
from litlab.train import run

TINY = ("logger=none", "callbacks.dashboard=null", "callbacks.progress_bar=null")


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


def test_a_file_that_is_a_link_is_replaced_not_written_through(tmp_path, victim):
    (tmp_path / "run").mkdir()
    target = tmp_path / "run" / "metrics.json"
    target.symlink_to(victim)
    write_text(target, "{}\n")
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink() and target.read_text() == "{}\n"


def test_a_temporary_file_planted_as_a_link_is_not_followed(tmp_path, victim):
    target = tmp_path / "last.ckpt"
    (tmp_path / ".last.ckpt.partial").symlink_to(victim)
    write_text(target, "new")
    assert victim.read_text() == "precious\n" and target.read_text() == "new"


def test_a_folder_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "plots").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(OSError, match="plots is a link; litlab never writes through one"):
        subfolder(tmp_path / "run", "plots")
    with pytest.raises(OSError, match="is a link"):
        write_text(tmp_path / "run" / "plots" / "loss.png", "x")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_picture_written_over_a_link_leaves_its_target(tmp_path, victim):
    png = tmp_path / "loss.png"
    png.symlink_to(victim)
    add_figure([], "final/loss", Figure(figsize=(1, 1)), 0, png)  # plots/ only, no logger
    assert victim.read_text() == "precious\n"
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_lock_file_that_is_a_link_is_refused(tmp_path, victim):
    (tmp_path / ".lock").symlink_to(victim)
    with pytest.raises(OSError) as info:
        lock_run_dir(tmp_path)
    assert info.value.errno == errno.ELOOP and "is a link" in str(info.value)
    assert victim.read_text() == "precious\n"


def test_eval_replaces_a_link_where_its_report_goes(make_config, victim):
    run_dir, _ = run(make_config("trainer.max_epochs=2", *TINY))
    best = run_dir / "checkpoints" / "best.ckpt"
    best.with_suffix(".eval.json").symlink_to(victim)
    assert main(["eval", str(best)]) == 0
    assert victim.read_text() == "precious\n"
    assert "test/loss" in best.with_suffix(".eval.json").read_text()


def test_resume_refuses_a_run_folder_whose_lock_is_a_link(make_config, victim, capsys):
    run_dir, _ = run(make_config("trainer.max_epochs=2", *TINY))
    copy = run_dir.with_name("copy")
    shutil.copytree(run_dir, copy)
    (copy / ".lock").unlink()
    (copy / ".lock").symlink_to(victim)
    assert main(["train", f"resume={copy}", "trainer.max_epochs=4"]) == 1
    assert f"{copy / '.lock'} is a link" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"
