"""Write data/diabetes_cohort.csv, the example table for `data=csv`, from scikit-learn's
diabetes data (raw units). Columns get their documented names; `bmi_class` (the WHO
bands of the body-mass index) adds a categorical column; a few cells are blanked, seeded,
to show how missing values are handled (the original has none).

    .venv/bin/python scripts/make_example_csv.py
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes

# the six blood serum measurements, by what scikit-learn's documentation says they are
NAMES = {"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu"}
OUT = Path(__file__).resolve().parents[1] / "data" / "diabetes_cohort.csv"


def main() -> None:
    frame = load_diabetes(scaled=False, as_frame=True).frame
    frame = frame.rename(columns={**NAMES, "target": "progression"})
    labels = ["underweight", "normal", "overweight", "obese"]
    bands = pd.cut(frame["bmi"], [0, 18.5, 25, 30, np.inf], labels=labels, right=False)
    frame.insert(3, "bmi_class", bands.astype(str))
    rng = np.random.default_rng(0)
    for column in ("bp", "bmi_class"):
        frame.loc[rng.choice(len(frame), size=6, replace=False), column] = np.nan
    frame.to_csv(OUT, index=False)
    print(f"wrote {OUT} ({len(frame)} rows)")


if __name__ == "__main__":
    main()
