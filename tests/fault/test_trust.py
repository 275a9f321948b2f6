"""Loading a file never runs code from it: a checkpoint's stored config, or a shared run
folder's config.yaml under resume=, may build only the targets trust.allowed_target
accepts, unless the user passes --trust. Each payload must leave no marker file and
change no file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from litlab.cli import main
from litlab.config import ConfigError
from litlab.predict import Predictor, evaluate_checkpoint
from litlab.train import run

EVIL_MODULE = "litlab_payload_module"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny finished circles run."""
    from litlab.config import compose

    runs = tmp_path_factory.mktemp("trust") / "runs"
    words = [f"runs_dir={runs}", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1"]
    run_dir, _ = run(compose([*words, "logger=none", "callbacks.dashboard=null"]))
    return run_dir


def payloads(tmp: Path) -> dict[str, tuple[str, dict]]:
    """name -> (node to put it in, the node): each would touch tmp/marker or empty
    tmp/victim if it ran; the module one does it when imported."""
    marker, victim = tmp / "marker", tmp / "victim"
    return {
        "os.system": ("data", {"_target_": "os.system", "command": f"touch {marker}"}),
        "subprocess": ("data", {"_target_": "subprocess.Popen", "args": ["touch", str(marker)]}),
        "eval": ("model", {"_target_": "builtins.eval", "source": f"open({str(marker)!r},'w')"}),
        "exec": ("model", {"_target_": "builtins.exec", "source": f"open({str(marker)!r},'w')"}),
        "logging": (
            "model",
            {"_target_": "logging.basicConfig", "filename": str(victim), "filemode": "w"},
        ),
        "module": ("data", {"_target_": f"{EVIL_MODULE}.Thing"}),
        "litlab function": ("data", {"_target_": "litlab.signatures.locate", "dotted": "x.y"}),
    }


@pytest.fixture
def evil(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, EVIL_MODULE, raising=False)
    (tmp_path / f"{EVIL_MODULE}.py").write_text(  # it leaves the marker when imported
        f"open({str(tmp_path / 'marker')!r}, 'w').close()\n"
        "class Thing:\n    def __init__(self):\n        raise ValueError('not data')\n"
    )
    (tmp_path / "victim").write_text("precious\n")
    return tmp_path


def assert_untouched(tmp: Path) -> None:
    assert not (tmp / "marker").exists()
    assert (tmp / "victim").read_text() == "precious\n"
    assert EVIL_MODULE not in sys.modules


def crafted_checkpoint(trained: Path, tmp: Path, group: str, node: dict) -> Path:
    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["litlab"]["config"][group] = node
    path = tmp / "shared.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("name", list(payloads(Path()).keys()))
def test_a_stored_target_outside_the_allowlist_is_refused_by_eval_and_predict(
    trained, evil, name, capsys
):
    group, node = payloads(evil)[name]
    ckpt = crafted_checkpoint(trained, evil, group, node)
    (evil / "in.csv").write_text("x1,x2\n0.1,0.2\n")
    assert main(["eval", str(ckpt)]) == 2
    assert main(["predict", str(ckpt), str(evil / "in.csv"), str(evil / "out.csv")]) == 2
    for load in (Predictor.from_checkpoint, evaluate_checkpoint):
        with pytest.raises(ConfigError) as info:
            load(ckpt)
        (error,) = info.value.errors
        assert error.startswith(f"{group}._target_={node['_target_']} ({ckpt}): ")
        assert "--trust" in error
    err = capsys.readouterr().err
    assert "the command line" not in err and "Traceback" not in err
    assert_untouched(evil)
    assert not (evil / "out.csv").exists()


@pytest.mark.parametrize("name", ["os.system", "logging", "module"])
def test_a_shared_run_folder_cannot_make_resume_run_its_targets(trained, evil, name, capsys):
    group, node = payloads(evil)[name]
    shared = evil / "shared_run"
    shutil.copytree(trained, shared)
    config = OmegaConf.load(shared / "config.yaml")
    if group == "data":  # as a callback too: resume builds the Trainer's callbacks
        config.callbacks = {"x": node}
    else:
        config[group] = node
    OmegaConf.save(config, shared / "config.yaml")
    assert main(["train", f"resume={shared}", "trainer.max_epochs=4"]) == 2
    err = capsys.readouterr().err
    assert f"._target_={node['_target_']} ({shared / 'config.yaml'})" in err
    assert_untouched(evil)


def test_trust_lets_a_stored_config_name_the_users_own_module(trained, evil):
    """--trust (trust=True) is what the user says to build a target of their own."""
    ckpt = crafted_checkpoint(trained, evil, *payloads(evil)["module"])
    with pytest.raises(ConfigError, match="data "):  # built, then found not to be data
        Predictor.from_checkpoint(ckpt, trust=True)
    assert (evil / "marker").exists()
    sys.modules.pop(EVIL_MODULE)


def test_the_users_own_command_line_may_name_a_target(make_config):
    """The rule is about files: the same target from the command line is checked only
    as any target is (it must import), as it always was."""
    from litlab.schema import key_errors

    errors = key_errors(make_config(f"callbacks.x._target_={EVIL_MODULE}_absent.Thing"))
    assert errors == [
        f"callbacks.x._target_ (the command line): cannot import '{EVIL_MODULE}_absent.Thing'"
    ]


def test_the_allowlist():
    """The targets in configs/ and the classes litlab defines; not a name a litlab module
    only imports, a function, a private class, or another library's class (a stored
    torch.optim.Adagrad needs --trust: configs/ names only the optimisers it offers)."""
    from litlab.trust import allowed_target

    allowed = ("litlab.model.MLP", "litlab.data.CirclesDataModule", "litlab.optim.warmup_cosine")
    for target in (
        *allowed,
        "torch.optim.SGD",
        "datetime.timedelta",
        "litlab.callbacks.RandomState",
    ):
        assert allowed_target(target), target
    borrowed = ("litlab.builders.Path", "litlab.baselines.SVC", "litlab.compare.EventAccumulator")
    for target in (*borrowed, "os.system", "litlab.cli.main", "litlab.__main__.X", "torch.load"):
        assert not allowed_target(target), target
    for target in ("x.Y", "litlab.module._Supervised", "torch.optim.Adagrad", 3, None):
        assert not allowed_target(target), target
