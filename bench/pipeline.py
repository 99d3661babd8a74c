"""The whole pipeline on all real photos, cold, stage by stage: wall time and peak memory.

Issue 3's acceptance numbers: a cold `dvc repro` (head mode) within 15 minutes on 2 cores, a
second `dvc repro` that changes nothing within 10 s, `dvc exp run -S train.lr=...` within 60 s,
and no stage above 4 GB. Runs in a fresh `git clone` of HEAD in a temp dir (so the work tree
and its DVC cache are untouched), each stage under `/usr/bin/time -v`. Writes a markdown table
to stdout and bench/out/pipeline.md.

    python -m bench.pipeline            # all 12,454 photos of ../shared/data/imagewoof
    python -m bench.pipeline --source DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
IMAGEWOOF = ROOT.parent / "shared" / "data" / "imagewoof"
STAGES = ("ingest", "preprocess", "features", "baseline", "train", "evaluate")
_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


@dataclass
class Step:
    """One timed command."""

    name: str
    seconds: float
    peak_mb: float


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.setdefault("NEPTUNE_MODE", "offline")
    return env


def timed(name: str, argv: list[str], cwd: Path) -> Step:
    """Run `argv` under /usr/bin/time -v; wall seconds and the peak RSS of its biggest process."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *argv], cwd=cwd, env=_env(), capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    match = _MAX_RSS.search(proc.stderr)
    return Step(name, seconds, int(match.group(1)) / 1024 if match else float("nan"))


def clone(dest: Path, source: Path) -> Path:
    """A fresh clone of HEAD with data.source pointed at `source`, its data/new laid down."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    params_path = dest / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["data"]["source"] = str(source)
    params["evaluate"]["negatives"] = str(ROOT.parent / "shared" / "data" / "not-dogs")
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "commit", "-qam", "bench: absolute data paths"], cwd=dest, check=True)
    shutil.rmtree(dest / "data" / "new", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "stages.ingest", "--init", "data/new"],
        cwd=dest,
        env=_env(),
        check=True,
        capture_output=True,
    )
    return dest


def run(source: Path) -> list[Step]:
    """Cold stages one by one, then the no-op repro and an experiment."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        repo = clone(Path(tmp) / "repo", source)
        steps = [timed(s, ["dvc", "repro", "-s", s], repo) for s in STAGES]
        total = sum(s.seconds for s in steps)
        steps.append(Step("cold total", total, max(s.peak_mb for s in steps)))
        steps.append(timed("second `dvc repro` (nothing changed)", ["dvc", "repro"], repo))
        experiment = ["dvc", "exp", "run", "-S", "train.lr=0.002"]
        steps.append(timed("`dvc exp run -S train.lr=0.002`", experiment, repo))
        metrics = json.loads((repo / "eval" / "metrics.json").read_text())
        sys.stdout.write(
            f"test split: top-1 {metrics.get('top1')}, top-3 {metrics.get('top3')} "
            f"(ImageNet training photos: optimistic)\n"
        )
        return steps


def table(steps: list[Step]) -> str:
    """Markdown table of the steps."""
    lines = ["| step | wall s | peak RSS MB |", "|---|---:|---:|"]
    lines += [f"| {s.name} | {s.seconds:.1f} | {s.peak_mb:.0f} |" for s in steps]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    """CLI entry point (also called by `python -m bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=IMAGEWOOF)
    args = parser.parse_args(argv)
    out = table(run(args.source.resolve()))
    sys.stdout.write(out)
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "pipeline.md").write_text(out)


if __name__ == "__main__":
    main(sys.argv[1:])
