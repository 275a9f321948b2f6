"""The `litlab` command; Lightning is imported only once a run is certain, so help and
config errors answer fast."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from litlab.check import check
from litlab.config import ConfigError, groups
from litlab.errors import DataError, Diverged, Interrupted, MissingPackage, PeerLost, SweepStopped
from litlab.rundirs import compose


def command(argv: list[str] | None = None) -> None:
    """The `litlab` program: `main`, then exit with its status."""
    status = main(argv)
    # Python's exit collects every object alive, torch's and Lightning's: 0.7 s to free
    # memory the OS takes back anyway. Frozen objects are left out; files are closed.
    gc.freeze()
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    argv, multirun, show = _hydra_flags(argv)
    habit = _hydra_habit(argv, multirun, show)
    if habit:
        print(f"litlab: {habit}", file=sys.stderr)
        return 2
    args = _parser().parse_args(argv)
    try:
        if multirun or args.command == "sweep":  # Hydra's -m: the grid, as litlab sweep runs it
            return _sweep(args.words, args.jobs)
        if args.command == "eval":
            return _eval(args.checkpoint, args.trust, args.overrides)
        if args.command == "predict":
            return _predict(args.checkpoint, args.input, args.output, args.trust)
        if args.command == "search":
            return _search(args.words, args.jobs)
        if args.command == "compare":
            return _compare(args.words, args.seeds, args.jobs)
        composed = check(compose(args.words, trust=args.trust), build=not show)
        for note in composed.notes:
            print(f"litlab: note: {note}", file=sys.stderr)
        if show:
            print(OmegaConf.to_yaml(composed.cfg), end="")
            return 0
        from litlab.distributed import is_rank_zero
        from litlab.train import run

        run_dir, metrics = run(composed)
    # one line each; DataError: the table's fault, not the config's (exit status 2)
    except (Diverged, Interrupted, SweepStopped, DataError, MissingPackage) as exc:
        print(f"litlab: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, Diverged) else getattr(exc, "exit_code", 2)
    except ConfigError as exc:
        print("litlab: bad config:", *(f"  {e}" for e in exc.errors), sep="\n", file=sys.stderr)
        return 2
    except (OSError, PeerLost) as exc:  # an unwritable runs folder, a full disk, a lost peer
        print(f"litlab: {exc}", file=sys.stderr)
        return 1
    if is_rank_zero():  # DDP runs this command once per process; one report is enough
        _report(run_dir, metrics)
    return 0


# Hydra words for what litlab names otherwise: what to type instead.
HYDRA_KEYS = {
    "hydra.run.dir": "a run's folder is <runs_dir>/<name>/<time>_<words>: set runs_dir= and name=",
    "hydra.sweep.dir": "a sweep's folder is <runs_dir>/sweeps/<words>: set runs_dir=",
    "ckpt_path": "litlab goes on from a run folder: resume=<run folder> (its last.ckpt); "
    "litlab eval <checkpoint> tests one",
}


def _hydra_habit(argv: list[str], multirun: bool, show: str) -> str | None:
    """What Hydra users type that litlab spells differently, and what to type instead."""
    if show not in ("", "job", "all"):
        return f"--cfg {show}: litlab prints the job's config: --cfg job"
    for word in argv[1:]:
        key, eq, value = word.partition("=")
        key = key.lstrip("+")
        if eq and key in HYDRA_KEYS:
            return f"{word}: {HYDRA_KEYS[key]}"
        if eq and key.startswith("hydra."):
            return (
                f"{word}: litlab composes configs with Hydra but runs the jobs itself: "
                "runs_dir= and name= place a run, -m (or litlab sweep) runs a grid"
            )
        many = "," in value and not value.lstrip().startswith(("[", "{", "'", '"'))
        if argv[0] == "train" and eq and many and not key.startswith("~") and not multirun:
            return (
                f"{word}: comma-separated values run several jobs: add -m "
                f"(`litlab train -m {word}`, or `litlab sweep {word}`)"
            )
    return None


def _hydra_flags(argv: list[str]) -> tuple[list[str], bool, str]:
    """`litlab train`'s Hydra flags anywhere among the words: `-m` (the grid, as `litlab
    sweep`) and `--cfg job` (print the composed config and stop)."""
    if not argv or argv[0] != "train":
        return argv, False, ""
    rest, multirun, show, words = [], False, "", iter(argv)
    for word in words:
        if word in ("-m", "--multirun"):
            multirun = True
        elif word == "--cfg" or word.startswith("--cfg="):
            show = word.partition("=")[2] or next(words, "")
        else:
            rest.append(word)
    return rest, multirun, show


def _eval(checkpoint: str, trust: bool, overrides: list[str]) -> int:
    from litlab.predict import evaluate_checkpoint
    from litlab.rundirs import write_json

    metrics = evaluate_checkpoint(checkpoint, trust, overrides)
    out = Path(checkpoint).with_suffix(".eval.json")
    write_json(out, metrics)  # atomically, replacing a link there rather than following it
    _report(out, metrics)
    return 0


def _predict(checkpoint: str, input_csv: str, output_csv: str, trust: bool) -> int:
    from litlab.predict import Predictor, check_output, write_predictions

    check_output(Path(checkpoint), Path(input_csv), Path(output_csv))
    predictor = Predictor.from_checkpoint(checkpoint, trust)
    frame = predictor.read(input_csv)
    out = predictor.predict(frame)
    write_predictions(out, Path(output_csv), frame.attrs.get("csv", {}))  # as the rows came
    for note in predictor.notes:
        print(note)
    refused = int((out["problem"] != "").sum())
    print(f"{len(frame) - refused} predictions written to {output_csv}")
    if refused:
        print(f"{refused} rows not predicted: the problem column says why")
    return 0


def _sweep(words: list[str], jobs: int) -> int:
    from litlab.sweep import sweep

    folder, rows = sweep(words, jobs)
    keys = [k for k in rows[0] if not k.endswith(" std")]
    names = [k for k in keys if k.startswith("best_")] + [k for k in keys if k.startswith("test/")]
    table = [["setting", "runs", *names]]
    for row in rows:
        cells = [f"{row[n]:.4f} ± {row[n + ' std']:.4f}" if n in row else "" for n in names]
        others = [f"{row[k]} {k}" for k in ("interrupted", "failed") if row[k]]
        runs = f"{row['runs']}" + (f" ({', '.join(others)})" if others else "")
        table.append([row["setting"], runs, *cells])
    _print_table(table)
    print(f"sweep folder: {folder} (sweep_summary.csv)")
    return 1 if any(row["failed"] for row in rows) else 0


def _search(words: list[str], jobs: int) -> int:
    import yaml

    from litlab.search import search

    folder, rows, stopped = search(words, jobs)
    print("best trials:" if rows else "no trial has ended yet")
    if rows:  # the value is the trial's best validation metric; its test metrics beside it
        _print_table([list(rows[0])] + [[_text(v) for v in row.values()] for row in rows[:10]])
    best = folder / "best.yaml"
    if best.exists():
        text = best.read_text()
        print(text.splitlines()[1].removeprefix("#").strip())
        for note in yaml.safe_load(text).get("notes") or []:
            print(note)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "pruned")}
    others = len(rows) - sum(counts.values())
    print(f"{counts['finished']} finished, {counts['pruned']} pruned, {others} failed or stopped")
    print(f"search folder: {folder} (best.yaml, trials.csv, history.png, importances.png)")
    return stopped or 0


def _compare(words: list[str], seeds: str, jobs: int) -> int:
    from litlab.compare import compare

    folder, rows = compare(words, seeds, jobs)
    _print_table([list(rows[0])] + [[_text(v) for v in row.values()] for row in rows])
    print(f"comparison: {folder}/comparison.png, {folder}/comparison.csv")
    return 0


def _report(run_dir: object, metrics: dict[str, Any]) -> None:
    """The test metrics, the network beside its baselines; who wins; the folder."""
    from litlab.verdict import overfitting, verdict

    models = list(dict.fromkeys(k.split("/")[1] for k in metrics if k.startswith("baseline/")))
    rows = [["metric", "network", *models]]
    for key in (k for k in metrics if k.startswith("test/")):
        name = key.removeprefix("test/")
        cells = [metrics[key], *(metrics.get(f"baseline/{m}/{name}") for m in models)]
        rows.append([key, *map(_text, cells)])
    _print_table(rows)
    for line in verdict(metrics) + overfitting(metrics):
        print(line)
    for key, value in metrics.items():
        if not key.startswith(("test/", "baseline/")):
            print(f"{key}: {_text(value)}")
    print(f"run folder: {run_dir}" if Path(str(run_dir)).is_dir() else f"written to {run_dir}")


def _print_table(rows: list[list[str]]) -> None:
    """Rows of cells in left-aligned columns, the first row the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _text(value: Any) -> str:
    if isinstance(value, dict):  # a cross-validation summary
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="litlab", description="A PyTorch Lightning template.")
    commands = parser.add_subparsers(dest="command", required=True)
    options = "\n".join(f"  {group:<11} {', '.join(names)}" for group, names in groups().items())
    train = commands.add_parser(
        "train",
        help="train and test a job in a new run folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train and test the job that configs/train.yaml and WORDS compose.",
        epilog=f"config groups and their options (pick with group=option):\n{options}\n\n"
        "Hydra's words: +key=value adds a key, ~key deletes one, group=null switches a group "
        "off,\n-m a=1,2 runs the grid (as litlab sweep), --cfg job prints the config.\n\n"
        "examples:\n  litlab train experiment=seed\n"
        "  litlab train optimizer=sgd optimizer.lr=0.5 scheduler=cosine trainer.max_epochs=300",
    )
    train.add_argument("words", nargs="*", metavar="WORDS", help="group=option or dotted.key=value")
    train.add_argument("-j", "--jobs", type=int, default=1, help="with -m: runs at a time")
    _trust_flag(train, "the resume= folder's config.yaml")
    evaluate = commands.add_parser("eval", help="test metrics of a checkpoint")
    evaluate.add_argument("checkpoint", help="a .ckpt file of a run")
    evaluate.add_argument(
        "overrides",
        nargs="*",
        metavar="trainer.KEY=VALUE",
        help="change the stored trainer node, e.g. trainer.accelerator=cpu",
    )
    _trust_flag(evaluate, "the checkpoint's stored config")
    predict = commands.add_parser("predict", help="predictions of a checkpoint for new rows")
    predict.add_argument("checkpoint", help="a .ckpt file of a run")
    predict.add_argument("input", help="a CSV of rows (or an image, a folder of images)")
    predict.add_argument("output", help="CSV to write: the input plus the predictions")
    _trust_flag(predict, "the checkpoint's stored config")
    for name, what in (
        ("sweep", "a grid of runs: optimizer=sgd,adam seed=1,2,3"),
        ("search", "a hyperparameter search with Optuna: search=circles [key=value ...]"),
        ("compare", "the lesson's optimiser and decay comparison"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("-j", "--jobs", type=int, default=1, help="processes at a time")
        command.add_argument("words", nargs="*" if name == "compare" else "+", metavar="WORDS")
    command.add_argument("--seeds", default="1,2,3", help="seeds of each setting (default 1,2,3)")
    return parser


def _trust_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--trust",
        action="store_true",
        help=f"let {what} build any _target_ (default: litlab's classes and configs/' targets)",
    )
