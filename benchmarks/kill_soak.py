"""Kill-and-resume soak: SIGKILL a search at random moments, resume it, compare with a clean run.

    python benchmarks/kill_soak.py --kills 20 --out runs/soak          # the full soak
    python benchmarks/kill_soak.py --kills 3 --tiny --out /tmp/soak    # the short one in .ci/run
    python benchmarks/kill_soak.py --kills 2 --tiny --method adalfl --out /tmp/soak-adalfl

One uninterrupted ``evomal search`` gives the reference. A second search with
the same seed is SIGKILLed ``--kills`` times, at random moments and, every
other time, while a temporary file (an atomic write in progress) exists in
the run directory (the children pause 50 ms inside each atomic write, a slow
disk, so such kills land; see ``benchmarks/slow_writes``); after each kill
the directory must read back (every JSON
file parses, the checkpoint loads) and ``evomal resume`` continues it. At the
end the killed run must equal the reference: the same best loss and fitness,
and the same ``events.jsonl`` line for line (timings aside), so no
evaluation was lost or repeated. Exits 1 on any difference, and when fewer kills than
asked for happened (the run ended first).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

TINY = ["--set", "gp.population_size=6", "--set", "gp.generations=3", "--set",
        "local_search.steps=5", "--set", "fitness.steps=50", "--set", "selection.k=2",
        "--set", "selection.steps=200"]  # fmt: skip


def command(
    out: Path, tiny: bool, resume: bool, method: str = "evomal", sets: list[str] | None = None
) -> list[str]:
    evomal = [sys.executable, "-m", "evomal.cli"]
    if resume:
        return [*evomal, "resume", str(out), "--no-meta-test"]
    extra = [arg for value in sets or [] for arg in ("--set", value)]
    return [*evomal, "search", "--method", method, "--seed", "0", "--out", str(out),
            "--no-meta-test", *(TINY if tiny else []), *extra]  # fmt: skip


def events(out: Path) -> list[dict]:
    lines = (out / "events.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def readable(out: Path) -> None:
    """Every JSON file of the run directory parses (checked after each kill)."""
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    for path in out.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            json.loads(line)


def summary(out: Path) -> dict:
    result = json.loads((out / "result.json").read_text())
    best = json.loads((out / "best_loss.json").read_text())
    best.pop("metadata", None)
    return {"best": best, "fitness": result.get("best_fitness"), "selection": [
        (f["label"], f["val_metric"]) for f in result.get("selection") or []]}  # fmt: skip


def run_to_end(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=child_env())
    return time.perf_counter() - start


#: Child processes get a ``sitecustomize`` that makes each atomic write pause between its
#: temporary file and the rename (a slow disk), so kills can land inside writes.
SLOW_WRITES = Path(__file__).resolve().parent / "slow_writes"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SLOW_WRITES), env.get("PYTHONPATH")]))
    return env


def kill_during(cmd: list[str], out: Path, delay: float, at_write: bool) -> str | None:
    """Start ``cmd``; SIGKILL it after ``delay`` s or, with ``at_write``, while a temporary file
    (an atomic write) exists. Returns "write" or "time" (what triggered the kill), None if the
    command finished first."""
    process = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env()
    )
    # at_write: wait for the first write after ``delay`` (a fallback deadline well after it)
    start = time.perf_counter()
    deadline = start + (delay + 120 if at_write else delay)
    while process.poll() is None:
        late = time.perf_counter() >= start + delay
        writing = at_write and late and out.exists() and any(out.glob(".*.tmp"))
        if writing or time.perf_counter() >= deadline:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return "write" if writing else "time"
        time.sleep(0.0005 if at_write else 0.01)
    return None  # it finished first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--tiny", action="store_true", help="a tiny search (for CI)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="seed for the kill moments")
    parser.add_argument("--method", default="evomal", help="the search method to kill")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="a config override for both searches (repeatable)")  # fmt: skip
    args = parser.parse_args()
    make = lambda out, resume: command(out, args.tiny, resume, args.method, args.sets)  # noqa: E731
    rng = random.Random(args.seed)
    reference, killed = args.out / "reference", args.out / "killed"
    for path in (reference, killed):
        if path.exists():
            raise SystemExit(f"{path} exists; choose another --out")
    began = time.time()
    duration = run_to_end(make(reference, False))
    startup = (reference / "config.json").stat().st_mtime - began  # imports, task, model check
    work = max(1.0, duration - startup)
    print(f"uninterrupted search: {duration:.1f} s ({startup:.1f} s before the run directory)")
    kills = writes = 0
    while kills < args.kills:
        resume = (killed / "config.json").exists()
        at_write = kills % 2 == 1
        # after the start-up; each kill at most 1/(kills + 1) of the work after the last
        # checkpoint, so that all of them land before the run ends
        delay = startup + rng.uniform(0.0, work / (args.kills + 1))
        trigger = kill_during(make(killed, resume), killed, delay, at_write)
        if trigger is None:
            print(f"the run finished before kill {kills + 1}")
            break
        kills += 1
        writes += trigger == "write"
        readable(killed)
        where = " (during an atomic write)" if trigger == "write" else ""
        print(f"kill {kills}: {delay:.2f} s into {'a resume' if resume else 'the search'}{where}; "
              "directory readable")  # fmt: skip
    if not (killed / "result.json").exists():  # killed before config.json existed: start again
        run_to_end(make(killed, (killed / "config.json").exists()))
    same_events = events(killed) == events(reference)
    same_result = summary(killed) == summary(reference)
    report = {
        "kills": kills,
        "kills_during_writes": writes,
        "uninterrupted_seconds": round(duration, 1),
        "events": len(events(reference)),
        "same_events": same_events,
        "same_result": same_result,
    }
    print(json.dumps(report))
    (args.out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    if kills < args.kills:
        print(f"FAILED: {kills} of the {args.kills} kills asked for happened before the run "
              "ended, so the soak did not test what it was asked to")  # fmt: skip
        return 1
    return 0 if same_events and same_result else 1


if __name__ == "__main__":
    sys.exit(main())
