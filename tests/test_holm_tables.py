"""benchmarks/holm_tables.py: Holm p from an older table's CSV, a clear error on other CSVs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "holm_tables.py"


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)


def test_holm_p_of_an_older_method_table_matches_the_hand_computed_step_down(tmp_path):
    csv = tmp_path / "results.csv"
    csv.write_text(
        "method,seed,test_metric\nbaseline,0,0.1\n\n"
        "method,n,mean,std,welch_t,welch_p\n"
        "baseline,5,0.1,0.01,,\nA,5,0.1,0.01,1.0,0.01\nB,5,0.1,0.01,1.0,0.04\nC,5,0.1,0.01,1.0,0.03\n"
    )
    done = _run(csv)
    assert done.returncode == 0, done.stderr
    # Holm by hand: sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, max(0.04, 0.06) = 0.06.
    lines = done.stdout.splitlines()
    assert "3 comparisons" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["A", "B", "C"]
    assert [float(line.split()[-1]) for line in lines[1:]] == [0.03, 0.06, 0.06]


def test_a_where_a_loss_matters_csv_gets_one_clear_line_not_a_traceback():
    csv = ROOT / "docs" / "results" / "where_a_loss_matters" / "mnist1d_clean" / "results.csv"
    done = _run(csv)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "no method and welch_p columns" in done.stderr and "table.md" in done.stderr
