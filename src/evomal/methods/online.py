"""AdaLFL and hypergradient descent: methods whose finalists adapt online while they train.

* ``adalfl`` (Raymond, Chen, Xue, Zhang, "Online Loss Function Learning",
  2023): ML3's loss network, initialised offline by the unrolled procedure
  (``ml3.*``, :func:`~evomal.methods.ml3.run_ml3`), then adapted online in
  every training run that follows: selection, meta-testing, ``evomal test``.
* ``hypergrad`` (the paper's learning-rate counterpart, Baydin et al. 2018):
  the task loss with a learning rate adapted online by the same step. Its
  initial rate is chosen offline as every finalist's is, on validation over
  ``selection.lr_factors``.

Both hand their candidate to the final selection, which enters it once per
meta learning rate of ``online.meta_lrs`` (:func:`online_finalists`), so the
meta rate is chosen on validation. What is returned is the online procedure:
the initial weights and the settings, in a loss file that says it adapts
online (:class:`~evomal.losses.document.OnlineSettings`).
"""

from __future__ import annotations

from collections.abc import Sequence

from evomal.config import OnlineConfig
from evomal.losses.document import OnlineSettings
from evomal.losses.learned import task_loss_tree
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.baseline import score_task_loss
from evomal.methods.ml3 import run_ml3
from evomal.methods.selection import Candidate


def run_adalfl(run: MethodRun) -> SearchResult:
    """ML3's offline network (trained and scored as :func:`run_ml3` does), then selection of
    its online versions, one per meta learning rate."""
    return run_ml3(run)


def run_hypergrad(run: MethodRun) -> SearchResult:
    """The task loss, scored by the search fitness, then selection of its online-lr versions,
    one per meta learning rate."""
    loss, record, summary = score_task_loss(run)
    candidates = []
    if record.fitness is not None:
        candidates = [Candidate(loss.expression, loss.to_dict(), record.fitness, "hypergrad")]
    message = f"hypergradient descent on {loss.expression}'s learning rate"
    return run.finish(
        run.result(
            best=task_loss_tree(run.kind),
            record=record,
            history=[summary],
            message=message,
            candidates=candidates,
        )
    )


def online_twin(candidate: Candidate, settings: OnlineSettings) -> Candidate:
    """``candidate`` adapting online as ``settings`` say."""
    what = "online" if settings.adapts == "loss" else "online lr"
    if settings.batch != "next":
        what += f", {settings.batch} batch"
    return Candidate(
        f"{candidate.label} [{what}, meta lr {settings.meta_lr:g}]",
        {**candidate.document, "online": settings.as_dict()},
        candidate.fitness,
        f"{candidate.key}|{what} {settings.meta_lr:g}",
    )


def online_finalists(
    chosen: Sequence[Candidate], always: str | None, config: OnlineConfig, trees: bool = True
) -> list[Candidate]:
    """The learned finalists as they enter selection: each one once per meta learning rate
    adapting ``always`` (AdaLFL, hypergrad); for a tree method with ``online.enabled``, each
    one fixed and the best ``online.trees`` of them (``chosen`` is best first) also once per
    meta learning rate adapting their weights (the online tree)."""
    if always is None and not (config.enabled and trees):
        return list(chosen)
    adapts = always or "loss"
    bases = chosen if always is not None else chosen[: config.trees]  # best first
    twins = [
        online_twin(c, OnlineSettings(adapts, m, config.snapshot_every, config.batch))
        for c in bases
        for m in config.meta_lrs
    ]
    return twins if always is not None else [*chosen, *twins]
