"""GLO (Gonzalez & Miikkulainen, CEC 2020): GP structure search, then CMA-ES on the best tree.

Stage 1 is the GP of EvoMAL without local search (GP-LFL). Stage 2 runs
CMA-ES over the edge weights of the best tree (they subsume its constants),
starting from the unit weights, with the same fitness. The result is the
better of the stage-1 tree (unit weights) and the stage-2 weighting.
"""

from __future__ import annotations

import numpy as np

from evomal.events import Scored
from evomal.losses.learned import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.cmaes import cma_search
from evomal.methods.gp_search import gp_result, run_gp


def run_glo(run: MethodRun) -> SearchResult:
    state = run_gp(run)
    structure = gp_result(run, state)
    if not state.done or structure.best is None:
        return run.finish(structure)
    tree = structure.best
    assert isinstance(tree, LearnedLoss)
    kind, activation = run.kind, run.config.gp.output_activation

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
    if not result.finished:
        return run.result(
            best=tree,
            record=structure.best_record,
            history=history,
            message="stopped during the CMA-ES stage",
            finished=False,
        )
    candidates = structure.candidates + result.candidates(
        lambda x: loss_of(x).to_dict(), lambda x: f"{tree.expression} (CMA-ES weights)"
    )
    candidates.sort(key=lambda c: c.fitness)
    stage1 = structure.best_fitness if structure.best_fitness is not None else float("inf")
    record: Scored | None
    if result.best is not None and result.best_fitness is not None and result.best_fitness < stage1:
        best, record = loss_of(np.asarray(result.best_x)), result.best
        message = (
            f"best fitness {result.best_fitness:.4g} after CMA-ES on the weights of "
            f"{tree.expression}"
        )
    else:
        best, record = tree, structure.best_record
        message = (
            f"best fitness {structure.best_fitness:.4g} (CMA-ES did not improve the GP tree "
            f"{tree.expression})"
        )
    return run.finish(
        run.result(
            best=best, record=record, history=history, message=message, candidates=candidates
        )
    )
