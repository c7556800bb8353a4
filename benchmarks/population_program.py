"""K trees as one PopulationProgram against the same K trees one by one, inside batched steps.

Same process, alternating rounds: population-batched fitness training (100
steps) plus the batched local search (30 meta steps) of the MLP on digits,
once with the trees evaluated one after another inside the batch and once as
one :class:`~evomal.symbolic.population.PopulationProgram`; prints the
median seconds and the program's speedup for K = 8, 16 and 32.

    python benchmarks/population_program.py
"""

import statistics
import time

import evomal.symbolic.population as population
from evomal.losses import LearnedLoss
from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import initial_phi
from evomal.meta.population_search import optimise_phi_population
from evomal.symbolic import compile_tree
from evomal.tasks import get_task
from evomal.training import SGDConfig
from evomal.training.population import train_population
from evomal.training.unrolled_sgd import UnrolledSGD
from population import population_trees


def main() -> None:
    run()


def run() -> None:
    """Print the A/B for K = 8, 16 and 32."""
    task = get_task("digits")
    learner = BaseLearner(task.without_test(), "mlp")
    for k in (8, 16, 32):
        trees = population_trees(k)
        crit = [LearnedLoss(t, [1.0] * compile_tree(t).n_weights) for t in trees]
        losses = [compile_tree(t) for t in trees]
        phis = [initial_phi(loss.n_weights, 1e-3, i) for i, loss in enumerate(losses)]
        times = {"loop": [], "program": []}
        for r in range(4):
            for mode in ("loop", "program") if r % 2 == 0 else ("program", "loop"):
                population.MIN_PROGRAM_SIZE = 1 if mode == "program" else 10**9
                t = time.perf_counter()
                train_population(
                    [learner.build(0) for _ in crit],
                    crit,
                    learner.task,
                    100,
                    SGDConfig(lr=0.01, momentum=0.9),
                    batch_size=128,
                    seed=0,
                )
                optimise_phi_population(
                    losses,
                    phis,
                    [learner],
                    steps=30,
                    base_steps=1,
                    optimizer=UnrolledSGD.plain(0.01),
                    meta_lr=1e-3,
                    batch_size=128,
                    run_seed=0,
                )
                if r:
                    times[mode].append(time.perf_counter() - t)
        m = {kk: statistics.median(v) for kk, v in times.items()}
        print(
            k,
            {kk: round(v, 3) for kk, v in m.items()},
            "program speedup",
            round(m["loop"] / m["program"], 2),
            flush=True,
        )


if __name__ == "__main__":
    main()
