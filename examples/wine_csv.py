"""Write scikit-learn's wine data as a CSV with a header, the shape ``--task csv:PATH`` reads.

``python examples/wine_csv.py wine.csv`` writes 13 feature columns and a ``class`` column.
"""

import sys

import numpy as np
from sklearn.datasets import load_wine


def main(path: str) -> None:
    data = load_wine()
    header = ",".join([*data.feature_names, "class"])
    rows = np.column_stack([data.data, data.target])
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.6g")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "wine.csv")
