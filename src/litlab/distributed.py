"""Ranks: which process of a job writes the run, and what the others learn from it.
Lightning is imported when first asked: the command line imports this before torch."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from litlab.errors import ConfigError

if TYPE_CHECKING:
    from lightning.fabric.plugins.environments import ClusterEnvironment

T = TypeVar("T")
_exchanges = itertools.count()  # every process of a job reads the same things in one order
_stores: list[Any] = []  # kept: rank 0's store is the server Lightning's process group joins


def environment() -> ClusterEnvironment:
    """The cluster environment Lightning's Trainer will pick, in its order."""
    from lightning.fabric.plugins.environments import (
        LightningEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    found = (e for e in (SLURMEnvironment, TorchElasticEnvironment) if e.detect())
    return next(found, LightningEnvironment)()


def is_rank_zero() -> bool:
    """Whether this is the process that writes the run: rank 0 of machine 0."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0 and environment().node_rank() == 0


def slurm_job() -> str | None:
    """This SLURM job's id (an array task's `<array job>_<task>`, as scontrol names it)
    when Lightning detects SLURM; else None."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if task is not None and "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def from_rank_zero(read: Callable[[], T]) -> T:
    """`read()` (JSON) where the run folder is; on the other machines of a job, what rank
    0 read (it alone may have the folder); rank 0's error stops every process. Not
    `strategy.broadcast`: there is no Trainer yet, so this goes through the launcher's
    rendezvous store, which Lightning's process group uses next."""
    key = f"litlab/{os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)}/{next(_exchanges)}"
    if environment().node_rank() > 0:
        store = _store()
        message = json.loads(store.get(key))
        if "errors" in message:
            if store.add(f"{key}/read", 1) == _readers():  # the last: rank 0 may end now
                store.set(f"{key}/all read", "")
            raise ConfigError(message["errors"])
        return message["value"]
    readers = _readers()
    # where the launcher does not count them, NODE_RANK says there are other machines
    publish = is_rank_zero() and (readers > 0 if readers is not None else "NODE_RANK" in os.environ)
    try:
        value = read()
    except Exception as exc:
        if publish:
            lines = exc.errors if isinstance(exc, ConfigError) else [f"rank 0: {exc}"]
            _store().set(key, json.dumps({"errors": lines}))
            if readers:  # rank 0 may serve the store: it ends once every reader has read
                _store().wait([f"{key}/all read"])
        raise
    if publish:
        _store().set(key, json.dumps({"value": value}))
    return value


def _readers() -> int | None:
    """The processes of the job on other machines than rank 0's, where the launcher says:
    torchrun's WORLD_SIZE less LOCAL_WORLD_SIZE, or SLURM's tasks less the first
    machine's (SLURM_TASKS_PER_NODE, e.g. `2(x3)`); else None."""
    if "LOCAL_WORLD_SIZE" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"]) - int(os.environ["LOCAL_WORLD_SIZE"])
    from lightning.fabric.plugins.environments import SLURMEnvironment

    first = re.match(r"\d+", os.environ.get("SLURM_TASKS_PER_NODE", ""))
    if SLURMEnvironment.detect() and first and "SLURM_NTASKS" in os.environ:
        return int(os.environ["SLURM_NTASKS"]) - int(first.group())
    return None


def _store() -> Any:
    """A client of the launcher's store (torchrun's agent keeps one), or else the store
    rank 0 serves at the address Lightning gives its process group (`multi_tenant`: the
    process group shares the server)."""
    from torch.distributed import TCPStore
    from torch.distributed.constants import default_pg_timeout

    if not _stores:
        env = environment()
        serve = is_rank_zero() and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
        _stores.append(
            TCPStore(
                env.main_address,
                env.main_port,
                is_master=serve,
                multi_tenant=serve,
                wait_for_workers=False,
                timeout=default_pg_timeout,  # as long as the process group will wait
            )
        )
    return _stores[0]
