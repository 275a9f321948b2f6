"""Signatures for validation come from a cache while their package is unchanged, so a
config error is reported without importing torch or Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Literal

import pytest

from litlab import signatures
from litlab.check import check
from litlab.config import compose


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of signatures of our own, empty at first."""
    monkeypatch.setattr(signatures, "CACHE", tmp_path / "signatures.json")
    signatures._cache.cache_clear()
    yield tmp_path / "signatures.json"
    signatures._cache.cache_clear()


def test_a_signature_is_read_once_then_taken_from_the_cache(cache):
    found = signatures.signature("litlab.model.MLP")
    assert found.params["hidden"] == "list" and not found.takes_any
    stored = json.loads(cache.read_text())["litlab.model.MLP"]
    assert stored["params"] == found.params and stored["stamp"] == signatures._stamp("litlab")
    stored["params"]["marker"] = "int"  # were the class read again, this would be gone
    cache.write_text(json.dumps({"litlab.model.MLP": stored}))
    signatures._cache.cache_clear()
    assert "marker" in signatures.signature("litlab.model.MLP").params


def test_a_changed_package_is_read_again(cache):
    signatures.signature("litlab.model.MLP")
    stored = json.loads(cache.read_text())
    stored["litlab.model.MLP"]["params"]["marker"] = "int"
    stored["litlab.model.MLP"]["stamp"] = "an older version"
    cache.write_text(json.dumps(stored))
    signatures._cache.cache_clear()
    assert "marker" not in signatures.signature("litlab.model.MLP").params


def test_an_unreadable_cache_is_read_again(cache):
    cache.write_text("{ torn")
    assert signatures.signature("torch.optim.SGD").params["lr"] != "any"


def test_types_as_plain_data_accept_what_the_hints_do():
    expected = signatures.spec(int | None)
    assert signatures.accepts(3, expected) and signatures.accepts(None, expected)
    assert not signatures.accepts(3.5, expected) and not signatures.accepts(True, expected)
    assert signatures.type_name(expected) == "int | null"
    mode = signatures.spec(Literal["min", "max"])
    assert signatures.accepts("max", mode) and not signatures.accepts("mean", mode)
    assert signatures.accepts(2, signatures.spec(float)) and not signatures.accepts("2", "float")


def test_a_config_error_is_found_without_importing_torch(tmp_path):
    check(compose([]), build=False)  # the default job's classes are in the cache now
    probe = (
        "import sys; from litlab.cli import main; "
        "code = main(['train', 'optimizer.lr=oops', 'trainer.max_epoch=3']); "
        "print(code, [m for m in ('torch', 'lightning') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.split("\n")[0] == "2 []"
    assert "optimizer.lr='oops'" in result.stderr and "trainer.max_epoch" in result.stderr
