"""The command line: commands run, and user errors are one clear line with exit code 2."""

from typer.testing import CliRunner

from evomal import LearnedLoss
from evomal.cli import app

runner = CliRunner()


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output
    assert runner.invoke(app, ["--version"]).output.startswith("evomal ")


def test_demo_runs():
    result = runner.invoke(app, ["demo", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "F.cross_entropy" in result.output and "phi" in result.output


def test_show_valid_and_invalid_files(tmp_path):
    good = tmp_path / "good.json"
    LearnedLoss.from_string("mul(y, log(fx))", phi=[2.0, 1.0, 1.0]).save(good)
    result = runner.invoke(app, ["show", str(good)])
    assert result.exit_code == 0 and "mul(y, log(fx))" in result.output

    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"format": "evomal-loss", "version": 1, "kind": "symbolic", "expression": "mul(y,'
    )
    result = runner.invoke(app, ["show", str(bad)])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    assert bad.read_text().endswith("mul(y,")  # nothing on disk was touched
