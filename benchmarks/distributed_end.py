"""How often a two-process ``torchrun`` training fails to end: a loop that catches rare hangs.

Each run is the same small CPU training under ``torchrun --standalone --nproc_per_node 2`` (gloo),
the shipped reference model, 2 epochs of 8 synthetic images. A run still alive after ``--limit``
seconds counts as hung: its processes are dumped with ``py-spy dump --native`` (when py-spy is
installed) into ``--dumps`` and killed. ``--busy K`` starts K spinning processes for the whole
loop, so that the runs compete for the cores as on a loaded CI machine (a hang at the end of a run
needs a thread to be scheduled late). ``--src DIR`` runs another checkout's ``src`` (to compare
two versions of the code on the same machine).

    .venv/bin/python benchmarks/distributed_end.py [--runs 40] [--busy 4] [--limit 60] [--src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from samlora.data.synthetic import write_mask_dataset

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _spin() -> None:
    while True:
        pass


def _ranks(proc: subprocess.Popen) -> list[int]:
    """The pids of torchrun's children, the ranks (killing torchrun alone leaves them running)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def _dump(pids: list[int], out: Path) -> None:
    """py-spy dumps of the processes ``pids`` into ``out``."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    with out.open("w") as f:
        for pid in pids:
            f.write(f"== rank process {pid}\n")
            f.flush()
            if spy:
                subprocess.run(
                    [spy, "dump", "--native", "--pid", str(pid)],
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    check=False,
                )


def one_run(work: Path, src: Path, limit: float, dump: Path) -> tuple[str, float]:
    """One two-process training; returns ('ended' | 'failed' | 'hung', seconds)."""
    shutil.rmtree(work / "run", ignore_errors=True)
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "samlora", "train",
           "--model.name", "tiny-sam", "--data.root", str(work / "data"), "--train.epochs", "2",
           "--train.batch_size", "2", "--train.num_workers", "0", "--train.trackers", "[none]",
           "--train.log_every", "1", "--output.dir", str(work / "run")]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(src))
    started = time.perf_counter()
    with (work / "log.txt").open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            ranks = _ranks(proc)
            _dump(ranks, dump)
            for pid in [*ranks, proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            proc.wait()
            return "hung", time.perf_counter() - started
    return ("ended" if code == 0 else "failed"), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--busy", type=int, default=4, help="spinning processes competing for the cores")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds after which a run counts as hung")
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    parser.add_argument("--dumps", type=Path, default=Path("distributed_end_dumps"))
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for s in spinners:
        s.start()
    counts = {"ended": 0, "failed": 0, "hung": 0}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            write_mask_dataset(work / "data", n_train=8, n_valid=3, seed=1)
            args.dumps.mkdir(parents=True, exist_ok=True)
            for i in range(1, args.runs + 1):
                outcome, seconds = one_run(work, args.src, args.limit, args.dumps / f"hang_{i}.txt")
                counts[outcome] += 1
                if outcome == "failed":
                    shutil.copy(work / "log.txt", args.dumps / f"failed_{i}.txt")
                print(f"run {i}: {outcome} in {seconds:.0f} s", flush=True)
    finally:
        for s in spinners:
            s.terminate()
    print(f"\n{args.src}: {counts['ended']} ended, {counts['failed']} failed, {counts['hung']} hung "
          f"of {args.runs} runs ({args.busy} busy loops, {args.limit:.0f} s limit; dumps in {args.dumps})")  # fmt: skip


if __name__ == "__main__":
    main()
