"""The README's set-up commands are the ones CI runs."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands():
    commands = _setup_commands()
    assert len(commands) == 2
    run, test = commands
    assert run.strip().startswith("python3 -m venv")
    assert "evomal " in run
    assert test.strip().endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    _, test = _setup_commands()
    assert test.strip() in [line.strip() for line in ci]


def _ci_commands() -> list[list[str]]:
    """The commands ``.ci/run`` executes: continuation lines joined, comments dropped, each
    line split at ``&&``, ``||`` and ``;`` and then into words."""
    text = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;", line):
            words = shlex.split(part, comments=True)
            if words:
                commands.append(words)
    return commands


#: What CI may change in the README's run command: its budget and where it writes.
_NOT_BUDGET = ("method", "task", "data.", "model")


def test_ci_runs_the_readme_run_command():
    """CI runs the README's run command (``evomal search``) itself, changing only its budget
    (``--set`` of sizes and steps) and adding ``--out``: the same task, model, method and
    preset, not merely a line that contains the words."""
    run, _ = _setup_commands()
    main_job = shlex.split(run.split("&&")[-1])
    found = []
    for words in _ci_commands():
        if words[: len(main_job)] != main_job:
            continue
        rest = words[len(main_job) :]
        options = rest[0::2]
        values = rest[1::2]
        if len(options) != len(values) or set(options) - {"--set", "--out"}:
            continue
        settings = [v for o, v in zip(options, values, strict=True) if o == "--set"]
        if any(v.split("=", 1)[0].startswith(_NOT_BUDGET) for v in settings):
            continue
        found.append(words)
    assert found, f"no command in .ci/run runs {' '.join(main_job)!r} with only budget settings"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block in the README runs as written (in a scratch directory)."""
    monkeypatch.chdir(tmp_path)
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.+?)\n```", readme, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_layout_lists_every_package_and_module():
    """The Layout section names exactly what is in src/evomal (and the top-level folders)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```\n(.+?)\n```", section, flags=re.S)[0]
    listed = {
        line.split()[0].rstrip("/")
        for line in block.splitlines()[1:]
        if line.startswith("  ") and not line.startswith("   ")
    }
    package = ROOT / "src" / "evomal"
    present = {
        p.name.removesuffix(".py") if p.suffix == ".py" else p.name
        for p in package.iterdir()
        if p.name not in ("__init__.py", "py.typed", "__pycache__")
    }
    assert {n.removesuffix(".py") for n in listed} == present
    for folder in ("benchmarks", "examples", "tests"):
        assert any(line.startswith(folder + "/") for line in block.splitlines())
