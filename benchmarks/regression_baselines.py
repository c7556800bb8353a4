"""Plain MSE under the regression presets, against predicting the training mean.

For each regression task and seed, an MLP is trained with MSE for the preset's
meta-testing schedule and scored on the test split; the mean predictor
(the training split's mean target) is scored on the same split. Targets are
standardised with training statistics, so MSE is in those units. A task
whose data is not on this machine (``california`` needs scikit-learn's
download cache) is reported as missing.

    python benchmarks/regression_baselines.py --out benchmarks/results/regression_baselines.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from evomal.config import build_config
from evomal.methods.meta_test import meta_test
from evomal.runs.tasks import task_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["diabetes", "boston", "california"])
    parser.add_argument("--presets", nargs="+", default=["reference_regression"])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/regression_baselines.json")
    )
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        config = build_config(preset)
        for name in args.tasks:
            mse, mean = [], []
            try:
                for seed in range(args.seeds):
                    task = task_for(name, config, seed=seed)
                    tested = meta_test("mse", task, args.model, config, seed=seed)
                    mse.append(tested.test_metric)
                    guess = task.train.y.mean(dim=0)
                    mean.append(float((task.test.y - guess).pow(2).mean()))
            except FileNotFoundError as exc:
                # The record is committed: name the home directory as ~, not this machine's path.
                reason = str(exc).replace(str(Path.home()), "~")
                rows.append({"preset": preset, "task": name, "missing": reason})
                print(f"{preset} {name}: data not present")
                continue
            row = {
                "preset": preset,
                "task": name,
                "model": args.model,
                "model_options": config.model_options,
                "steps": config.meta_test.steps,
                "mse_test": mse,
                "mean_predictor_test": mean,
                "mse_mean": statistics.mean(mse),
                "mse_std": statistics.stdev(mse) if len(mse) > 1 else None,
                "mean_predictor_mean": statistics.mean(mean),
                "mse_beats_mean_on_every_seed": all(a < b for a, b in zip(mse, mean, strict=True)),
            }
            rows.append(row)
            print(
                f"{preset} {name}: MSE-trained {row['mse_mean']:.4f} +- {row['mse_std']:.4f}, "
                f"mean predictor {row['mean_predictor_mean']:.4f}, "
                f"beats it on every seed: {row['mse_beats_mean_on_every_seed']}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
