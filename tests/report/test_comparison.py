"""The statistics of experiment tables: paired t against scipy, Holm against a hand computation."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from evomal.report.comparison import compare, holm, paired_t, welch_t
from evomal.report.tables import TUNED_TASK_LOSS, markdown_table, method_rows


def test_holm_matches_a_hand_computation():
    # Sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.5 (x1 = 0.5).
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # The running maximum keeps adjusted values in the order of the raw ones.
    assert holm([0.01, 0.012]) == pytest.approx([0.02, 0.02])
    assert holm([0.4, None]) == pytest.approx([0.8, 1.0])  # a missing test counts as p = 1


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_never_lowers_a_p_value_and_keeps_their_order(ps):
    adjusted = holm(ps)
    assert all(a >= p - 1e-12 and a <= 1.0 for a, p in zip(adjusted, ps, strict=True))
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adjusted[i] <= adjusted[j] + 1e-12 for i, j in itertools.pairwise(order))


def test_the_paired_and_welch_tests_are_scipys():
    a, b = [0.30, 0.28, 0.35, 0.31, 0.29], [0.33, 0.30, 0.36, 0.35, 0.30]
    t, p = paired_t(a, b)
    expected = stats.ttest_rel(a, b)
    assert (t, p) == pytest.approx((expected.statistic, expected.pvalue))
    t, p = welch_t(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert (t, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert paired_t([0.1, 0.2], [0.1, 0.2]) == (0.0, 1.0)  # identical: no difference
    assert paired_t([0.1], [0.2]) == (None, None)


def test_compare_pairs_by_seed_and_adjusts_over_the_whole_table():
    rows = {
        "a": {0: 0.30, 1: 0.28, 2: 0.35},
        "b": {0: 0.33, 1: 0.30, 2: 0.36, 3: 0.5},  # seed 3 has no partner
        "c": {0: 0.31, 1: None, 2: 0.37},  # a diverged seed counts as worse
    }
    found = {(c.row, c.comparator): c for c in compare(rows, ["a"])}
    assert set(found) == {("b", "a"), ("c", "a")}
    b = found[("b", "a")]
    assert b.pairs == 3 and b.worse == 3
    assert b.p_paired == pytest.approx(
        stats.ttest_rel([0.33, 0.30, 0.36], [0.30, 0.28, 0.35]).pvalue
    )
    assert found[("c", "a")].pairs == 2 and found[("c", "a")].worse == 3
    raw = [found[k].p_paired for k in (("b", "a"), ("c", "a"))]
    assert [found[k].p_holm for k in (("b", "a"), ("c", "a"))] == pytest.approx(holm(raw))


def _zoo_records():
    """Two seeds of a zoo experiment: tuned CE without early stopping wins validation on
    seed 0, with it on seed 1; EvoMAL returns a learned loss."""

    def row(key, test, val):
        return {"row": key, "test_metric": test, "val_metric": val, "lr_factor": 1.0}

    records = []
    for seed, (ce, es) in enumerate([((0.60, 0.50), (0.55, 0.52)), ((0.62, 0.55), (0.58, 0.50))]):
        records.append({
            "method": "zoo", "seed": seed, "test_metric": 0.5 + seed / 100, "metric": "error rate",
            "rows": [row("ce", *ce), row("ce_es", *es), row("gce", 0.52, 0.45),
                     row("ce_preset", 0.65, 0.6)],
        })  # fmt: skip
        records.append(
            {
                "method": "evomal",
                "seed": seed,
                "test_metric": 0.4 + seed / 50,
                "metric": "error rate",
                "rows": [row("best_learned", 0.41, 0.4)],
            }
        )
    return records


def test_tuned_cross_entropy_is_chosen_per_seed_by_validation_never_by_test():
    rows = {r.key: r for r in method_rows(_zoo_records())}
    # seed 0: validation 0.50 (plain) < 0.52 (early stopping) -> plain's test 0.60, although
    # early stopping tested better; seed 1: 0.50 < 0.55 -> early stopping's 0.58.
    assert rows[TUNED_TASK_LOSS].per_seed == {0: 0.60, 1: 0.58}
    assert [c.comparator for c in rows["evomal"].comparisons] == [TUNED_TASK_LOSS, "zoo"]


def test_the_zoo_table_lists_every_row_with_both_comparators():
    table = markdown_table(method_rows(_zoo_records()))
    header = table.splitlines()[0]
    assert "vs tuned cross-entropy (± early stopping, by validation)" in header
    assert "vs zoo pick (by validation)" in header
    for label in (
        "cross-entropy, the preset's lr",
        "tuned cross-entropy + early stopping",
        "tuned gce",
        "zoo pick (by validation)",
        "EvoMAL, best learned finalist",
    ):
        assert f"| {label} |" in table


def test_every_returned_loss_is_marked_learned_or_as_the_known_loss_it_is():
    records = _zoo_records()
    marks = [({"learned": False, "baseline": "gce(q=0.7) at 3x lr"}, "gce(q=0.7) at 3x lr"),
             ({"learned": False, "baseline": None, "equals": "mae"}, "= mae")]  # fmt: skip
    for record in (r for r in records if r["method"] == "evomal"):
        record.update(marks[record["seed"]][0])
        record["rows"][0].update({"learned": True, "equals": None})
    rows = {r.key: r for r in method_rows(records)}
    assert rows["evomal"].returned_as == {0: "gce(q=0.7) at 3x lr", 1: "= mae"}
    assert rows["evomal/best_learned"].returned_as == {0: "learned", 1: "learned"}
    assert rows["zoo"].returned_as == {}
    table = markdown_table(list(rows.values()))
    assert "returned loss per seed" in table.splitlines()[0]
    assert "| gce(q=0.7) at 3x lr; = mae |" in table
    old = method_rows(_zoo_records())  # records from before issue 30 say nothing
    assert "returned loss per seed" not in markdown_table(old)


def test_with_hypergrad_every_row_is_also_tested_against_the_learned_schedule():
    """When hypergrad ran, it is a third comparator (an online loss's gain must survive the
    learning-rate schedule learned the same way), Holm-adjusted with the other two over the
    whole table: the adjusted p is Holm's over every (row, comparator) test."""
    records = _zoo_records()
    for seed in (0, 1):
        records.append({"method": "hypergrad", "seed": seed, "test_metric": 0.45 + seed / 40,
                        "metric": "error rate"})  # fmt: skip
        records.append({"method": "adalfl", "seed": seed, "test_metric": 0.42 + seed / 30,
                        "metric": "error rate"})  # fmt: skip
    rows = method_rows(records)
    by_key = {r.key: r for r in rows}
    assert [c.comparator for c in by_key["adalfl"].comparisons] == [
        TUNED_TASK_LOSS,
        "zoo",
        "hypergrad",
    ]
    tests = [c for r in rows for c in r.comparisons]
    assert [c.p_holm for c in tests] == pytest.approx(holm([c.p_paired for c in tests]))
    assert "vs Hypergrad" in markdown_table(rows).splitlines()[0]


def test_the_schedule_comparator_is_hypergrads_schedule_not_the_loss_it_returned():
    """With the zoo as rivals, hypergrad returns the zoo's pick when its schedule loses on
    validation; the third comparator is then its best learned finalist (the schedule), and
    each row's test against it equals a paired t on the two rows' per-seed values."""
    from evomal.report.comparison import paired_t

    records = _zoo_records()
    schedule = {0: 0.47, 1: 0.53}
    for seed in (0, 1):
        records.append({"method": "hypergrad", "seed": seed, "test_metric": 0.5 + seed / 100,
                        "metric": "error rate", "baseline": "zoo pick",
                        "rows": [{"row": "best_learned", "test_metric": schedule[seed],
                                  "val_metric": 0.5, "lr_factor": 1.0}]})  # fmt: skip
        records.append({"method": "adalfl", "seed": seed, "test_metric": 0.42 + seed / 30,
                        "metric": "error rate"})  # fmt: skip
    rows = method_rows(records)
    by_key = {r.key: r for r in rows}
    comparisons = {c.comparator: c for c in by_key["adalfl"].comparisons}
    assert list(comparisons) == [TUNED_TASK_LOSS, "zoo", "hypergrad/best_learned"]
    _, p = paired_t(by_key["adalfl"].values, [schedule[0], schedule[1]])
    assert comparisons["hypergrad/best_learned"].p_paired == pytest.approx(p)
    assert "vs Hypergrad, best learned finalist" in markdown_table(rows).splitlines()[0]
