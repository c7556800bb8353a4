"""TaylorGLO (Gonzalez & Miikkulainen, GECCO 2021): CMA-ES over a Taylor-polynomial loss.

The loss is the third-order bivariate Taylor polynomial of
:mod:`evomal.losses.taylor` (8 parameters: a learned centre and the 6
coefficients of the terms that depend on f(x)). CMA-ES (population 25, 50
generations in the paper preset) minimises the same fitness as EvoMAL:
the validation metric after partial training.
"""

from __future__ import annotations

import numpy as np

from evomal.losses.taylor import TaylorLoss, n_parameters
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.cmaes import cma_search


def run_taylorglo(run: MethodRun) -> SearchResult:
    cfg = run.config.cmaes
    order = cfg.taylor_order
    kind, activation = run.kind, run.config.gp.output_activation

    def loss_of(x: np.ndarray) -> TaylorLoss:
        return TaylorLoss([float(v) for v in x], kind, order, activation)

    result = cma_search(
        run,
        x0=np.zeros(n_parameters(order)),
        sigma0=cfg.sigma0,
        document=lambda x: loss_of(x).to_dict(),
        describe=lambda x: loss_of(x).expression,
    )
    best = loss_of(np.asarray(result.best_x)) if result.best_x is not None else None
    message = (
        f"best fitness {result.best_fitness:.4g}: {best.expression}"
        if best is not None
        else "no TaylorGLO candidate trained to a finite validation metric"
    )
    candidates = result.candidates(
        lambda x: loss_of(x).to_dict(), lambda x: "Taylor: " + loss_of(x).expression
    )
    return run.finish(
        run.result(
            best=best,
            record=result.best,
            history=result.history,
            message=message,
            finished=result.finished,
            candidates=candidates,
        )
    )
