"""GLO (Gonzalez & Miikkulainen, CEC 2020): GP structure search, then CMA-ES on the best tree.

Stage 1 is the GP of EvoMAL without local search (GP-LFL). Stage 2 runs
CMA-ES over the edge weights of the best tree (they subsume its constants),
starting from the unit weights, with the same fitness. The result is the
better of the stage-1 tree (unit weights) and the stage-2 weighting.
"""

from __future__ import annotations

import numpy as np

from evomal.losses.learned import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.cmaes import cma_search
from evomal.methods.gp_search import gp_result, run_gp


def run_glo(run: MethodRun) -> SearchResult:
    state, verdicts = run_gp(run)
    structure = gp_result(run, state, verdicts)
    if not state.done or structure.best is None:
        structure.method = run.method
        return run.finish(structure)
    tree = structure.best
    assert isinstance(tree, LearnedLoss)
    kind, activation = run.kind, run.config.gp.output_activation
    run.resume_from = {**(run.resume_from or {}), "gp": state.as_dict()}

    def loss_of(x: np.ndarray) -> LearnedLoss:
        return LearnedLoss(tree.expression, [float(v) for v in x], kind, activation)

    if tree.tree.n_edges == 0:
        return run.finish(structure)
    result = cma_search(
        run,
        x0=tree.phi.detach().numpy().astype(float),
        sigma0=run.config.cmaes.glo_sigma0,
        document=lambda x: loss_of(x).to_dict(),
        describe=lambda x: f"{tree.expression} with CMA-ES weights",
        generation_offset=len(state.history),
    )
    history = state.history + result.history
    for verdict, count in result.verdicts.items():
        verdicts[verdict] = verdicts.get(verdict, 0) + count
    if not result.finished:
        return SearchResult(
            method=run.method,
            best=tree,
            best_fitness=structure.best_fitness,
            best_outcome=structure.best_outcome,
            history=history,
            run_dir=run.run_dir,
            message="stopped during the CMA-ES stage",
            verdicts=verdicts,
            finished=False,
        )
    candidates = structure.candidates + result.candidates(
        lambda x: loss_of(x).to_dict(), lambda x: f"{tree.expression} (CMA-ES weights)"
    )
    candidates.sort(key=lambda c: c.fitness)
    stage1 = structure.best_fitness if structure.best_fitness is not None else float("inf")
    fitness: float | None
    if (
        result.best_x is not None
        and result.best_fitness is not None
        and result.best_fitness < stage1
    ):
        best, fitness = loss_of(np.asarray(result.best_x)), result.best_fitness
        message = f"best fitness {fitness:.4g} after CMA-ES on the weights of {tree.expression}"
    else:
        best, fitness = tree, structure.best_fitness
        message = (
            f"best fitness {fitness:.4g} (CMA-ES did not improve the GP tree {tree.expression})"
        )
    outcome = {"fitness": fitness, "phi": best.phi.detach().tolist(), "expression": best.expression}
    return run.finish(
        SearchResult(
            method=run.method,
            best=best,
            best_fitness=fitness,
            best_outcome=outcome,
            history=history,
            run_dir=run.run_dir,
            message=message,
            verdicts=verdicts,
            candidates=candidates,
        )
    )
