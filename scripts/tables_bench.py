"""The data=csv defaults against their linear baselines on tables of different shapes:
each table is written to CSV, trained with `data=csv` and nothing
else but its target, and the network's test score set beside the best baseline's.

    .venv/bin/python scripts/tables_bench.py [OUT_DIR [WORDS...]]   (words change every run)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from litlab.config import compose
from litlab.train import train

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "diabetes_cohort.csv"


def tables(folder: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (CSV, target, headline metric)."""
    cancer = load_breast_cancer(as_frame=True)
    frame = cancer.frame.drop(columns="target")
    frame["diagnosis"] = np.where(cancer.target == 0, "malignant", "benign")
    frame.to_csv(folder / "cancer.csv", index=False)
    wine = load_wine(as_frame=True)
    grades = np.array(["I", "II", "III"])[wine.target]
    wine.frame.drop(columns="target").assign(grade=grades).to_csv(folder / "wine.csv", index=False)
    load_diabetes(scaled=False, as_frame=True).frame.to_csv(folder / "diabetes.csv", index=False)
    cohort(folder / "cohort.csv")
    return {
        "breast_cancer (569 x 30, binary text)": (folder / "cancer.csv", "diagnosis", "acc"),
        "wine (178 x 13, 3 text grades)": (folder / "wine.csv", "grade", "acc"),
        "diabetes (442 x 10, regression)": (folder / "diabetes.csv", "target", "r2"),
        "diabetes_cohort example (missing, a category)": (EXAMPLE, "progression", "r2"),
        "cohort (id, text categories, 8% missing, ;)": (folder / "cohort.csv", "progression", "r2"),
    }


def cohort(path: Path) -> None:
    """A diabetes-like cohort never seen while building: an id, text categories, missing
    values, semicolons and decimal commas."""
    frame = load_diabetes(scaled=False, as_frame=True).frame.rename(
        columns={"target": "progression"}
    )
    rng = np.random.default_rng(7)
    frame.insert(0, "patient_id", rng.permutation(len(frame)) + 10_000)
    frame["sex"] = np.where(frame["sex"] == 1, "female", "male")
    frame["bp_band"] = pd.cut(
        frame["bp"], [0, 80, 90, 200], labels=["normal", "high", "very high"]
    ).astype(str)
    for column in ("bmi", "s5", "bp_band"):
        frame.loc[rng.choice(len(frame), 35, replace=False), column] = np.nan
    frame.to_csv(path, index=False, sep=";", decimal=",")


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (path, target, metric) in tables(folder).items():
        words = [
            f"runs_dir={folder}/runs",
            "data=csv",
            f"data.path={path}",
            f"data.target={target}",
            "data.missing=impute",
            "logger=none",
            *sys.argv[2:],
        ]
        _, metrics = train(compose(words))
        baselines = {
            k.split("/")[1]: v
            for k, v in metrics.items()
            if k.startswith("baseline/") and k.endswith(f"/{metric}")
        }
        best = max(baselines, key=baselines.get)
        mine = metrics[f"test/{metric}"]
        rows.append(
            [
                name,
                metric,
                f"{mine:.3f}",
                f"{best} {baselines[best]:.3f}",
                f"{mine - baselines[best]:+.3f}",
            ]
        )
    print("| table | metric | network (data=csv defaults) | best baseline | difference |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
