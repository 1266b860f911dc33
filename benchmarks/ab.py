"""Shared by the A/B benchmarks: interleaved timing with min and median, a table, a JPEG data set.

Every benchmark here runs the samlora path (A) and a bare baseline written in the benchmark (B)
in one process, alternating A, B, A, B, ... so that load from other work on the machine hits
both alike, and reports min and median seconds and their ratios. Never used by tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each case per repeat, the cases alternating; ``warmup`` untimed rounds first."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def summary(seconds: list[float]) -> tuple[float, float]:
    """``(min, median)``."""
    return min(seconds), statistics.median(seconds)


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    """A Markdown table (what benchmarks/results.md holds)."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def ratio_row(name: str, a: list[float], b: list[float], items: int) -> tuple[str, ...]:
    """One row: items/s of A and B (from min and median seconds) and the speed ratio A/B."""
    (a_min, a_med), (b_min, b_med) = summary(a), summary(b)
    return (
        name,
        f"{items / a_min:.1f} / {items / a_med:.1f}",
        f"{items / b_min:.1f} / {items / b_med:.1f}",
        f"{b_min / a_min:.2f}x / {b_med / a_med:.2f}x",
    )


def loader_rows(
    bare: Callable[[int], Callable[[], object]],
    start: Callable[[int], object],
    device_step: Callable[[list], object],
    items: int,
    repeats: int,
) -> list[tuple[str, ...]]:
    """The loader benchmarks' rows: samlora's first and cached epochs, without and with the batch
    made on the device, against the bare loop, with 0 and 2 workers (interleaved per worker count).

    Args:
        bare: ``bare(workers)`` is one epoch of the bare loop.
        start: ``start(workers)`` is what a run builds at its start (the data check, the decoded
            cache, the workers): an ``EpochLoader`` of training items.
        device_step: makes a list of items into the device batch.
    """
    state: dict[int, list] = {}

    def ours(workers: int, first: bool, device: bool) -> Callable[[], None]:
        def run() -> None:
            if first or workers not in state:
                state[workers] = [start(workers), 0]
            state[workers][1] += 1  # later epochs of the same run reuse its cache and workers
            loader, epoch = state[workers]
            for batch in loader.epoch(epoch, range(items)):
                if device:
                    device_step(batch)

        return run

    rows = []
    for workers in (0, 2):
        cases = {
            "bare": bare(workers),
            "first": ours(workers, True, False),
            "cached": ours(workers, False, False),
            "first+device": ours(workers, True, True),
            "cached+device": ours(workers, False, True),
        }
        times = interleaved(cases, repeats)
        for name in ("first", "cached", "first+device", "cached+device"):
            rows.append(ratio_row(f"{name}, {workers} workers", times[name], times["bare"], items))
    return rows


def jpeg_mask_set(root: Path, n: int, size: tuple[int, int] = (1024, 1024), seed: int = 0) -> Path:
    """``root/train/images/*.jpg`` (quality 90) + ``root/train/masks/*.png``: synthetic shapes."""
    from samlora.data.synthetic import write_mask_split

    folder = root / "train"
    write_mask_split(folder, n, seed=seed, size=size)
    for png in sorted((folder / "images").glob("*.png")):
        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), quality=90)
        png.unlink()
    return root


def bare_decode(image_path: Path, mask_path: Path, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The bare baseline's input step: PIL decodes the JPEG, resizes it to ``side``, reads the mask."""
    image = Image.open(image_path).convert("RGB")
    scale = side / max(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    return np.asarray(image), np.asarray(Image.open(mask_path))
