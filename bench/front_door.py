"""Bench: how long the commands a newcomer mistypes take to answer (issue 25, "answers at once").

    python bench/front_door.py                          # this checkout; writes bench/front_door.json, prints a table
    python bench/front_door.py --source /tmp/old --label before --repeat 1   # the same cases against another copy

Each case runs `python -m clip_lora ...` in a fresh process (wall time from spawn to exit, the median of --repeat
runs), in a scratch folder laid out like a fresh clone with a few run folders in it. The goal is <= 1 s on a quiet
machine for each case: every one needs only the file system, so none may wait for torch or transformers. A case
also records its exit status, its last stderr line and whether the process had torch loaded when it answered
(measured with -X importtime). Not a test: figures depend on the machine; the tests assert the answers.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "front_door.json"
GOAL_S = 1.0
WNIDS = ("n01440764", "n02102040")  # two ImageNette classes: an imagenette layout the quick check accepts

# name -> argv after `python -m clip_lora`; run in the scratch folder (see lay_out)
CASES = {
    "config 1gpu": ["config", "1gpu"],
    "train: --data_dir missing (typo)": ["train", "smoke", "--data_dir", "runs/demo-assets/imagenete"],
    "train: --output_dir holds a finished run": ["train", "smoke", "--output_dir", "runs/finished"],
    "train: --output_dir locked by a run": ["train", "smoke", "--output_dir", "runs/locked"],
    "train: one class folder": ["train", "smoke", "--dataset_name", "one_class", "--output_dir", "runs/new"],
    "train: local model missing": ["train", "smoke", "--model_name_or_path", "./models/clip"],
    "predict: runs/demo before make demo": [
        "predict",
        "--adapter_name_or_path",
        "runs/demo",
        "photo.jpg",
    ],
    "eval: adapter path typo": ["eval", "smoke", "--adapter_name_or_path", "runs/finishd"],
    "compare: missing folder": ["compare", "runs/nope", "runs/finished"],
    "compare: a file": ["compare", "photo.jpg", "runs/finished"],
}
FRESH_CLONE = {"predict: runs/demo before make demo"}  # run where runs/ does not exist yet


def lay_out(scratch: Path) -> dict[str, Path]:
    """Two working folders: `clone` (a project after make setup: demo assets, a finished and a locked run) and
    `fresh` (nothing made yet)."""
    clone, fresh = scratch / "clone", scratch / "fresh"
    for split in ("train", "val"):
        for wnid in WNIDS:
            (clone / "runs/demo-assets/imagenette" / split / wnid).mkdir(parents=True)
        (clone / "one_class" / split / "cat").mkdir(parents=True)
    (clone / "runs/demo-assets/model").mkdir(parents=True)
    (clone / "runs/demo-assets/model/config.json").write_text("{}")
    for name in ("finished", "locked"):
        run = clone / "runs" / name
        run.mkdir(parents=True)
        (run / "run_config.json").write_text('{"do_train": true}')
    (clone / "runs/finished/.run_complete").write_text("finished\n")
    (clone / "runs/finished/all_results.json").write_text("{}")
    fresh.mkdir()
    for folder in (clone, fresh):
        (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    return {"clone": clone, "fresh": fresh}


def one_run(argv: list[str], cwd: Path, env: dict) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "clip_lora", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    lines = done.stderr.splitlines()
    answer = [line for line in lines if not line.startswith("import time:")]
    return {
        "seconds": seconds,
        "status": done.returncode,
        "answer": (answer or done.stdout.strip().splitlines() or [""])[-1][:300],
        "torch_loaded": any(line.rstrip().endswith("| torch") for line in lines),
    }


def run_cases(source: Path, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    results = {}
    with tempfile.TemporaryDirectory(prefix="front-door-") as tmp:
        folders = lay_out(Path(tmp))
        lock_fd = os.open(folders["clone"] / "runs/locked/.run.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # held by this process: a run in progress
        os.write(lock_fd, b"pid 1 on bench\n")
        try:
            for name, argv in CASES.items():
                cwd = folders["fresh" if name in FRESH_CLONE else "clone"]
                runs = [one_run(argv, cwd, env) for _ in range(repeat)]
                results[name] = {
                    **runs[-1],
                    "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                    "runs": [round(r["seconds"], 3) for r in runs],
                }
                print(f"{results[name]['seconds']:7.2f} s  {name}", file=sys.stderr, flush=True)
        finally:
            os.close(lock_fd)
    return results


def table(results: dict) -> str:
    lines = [f"{'case':<44}{'seconds':>9}  torch  answer"]
    for name, r in results.items():
        lines.append(
            f"{name:<44}{r['seconds']:>9.2f}  {'yes' if r['torch_loaded'] else 'no':<5}  "
            f"[{r['status']}] {r['answer'][:90]}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(ROOT), help="the checkout whose clip_lora runs (PYTHONPATH)")
    parser.add_argument("--label", default="after", help="the key the figures are stored under in the JSON")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--note", default="", help="e.g. how busy the machine was")
    args = parser.parse_args()
    results = run_cases(Path(args.source).resolve(), args.repeat)
    print(table(results))
    try:
        stored = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        stored = {}
    stored["goal_seconds"] = GOAL_S
    stored[args.label] = {
        "source": args.source if args.source != str(ROOT) else ".",
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "note": args.note,
        "cases": results,
        "over_goal": [name for name, r in results.items() if r["seconds"] > GOAL_S],
    }
    RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)} [{args.label}]")


if __name__ == "__main__":
    main()
