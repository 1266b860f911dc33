"""Load test of ``samlora serve`` on loopback: latency, throughput, errors and server memory.

Starts ``samlora serve`` (the shipped reference model, two adapters) as a separate process on a
free 127.0.0.1 port and compares it with a bare in-process ``Predictor`` doing the same work:

1. single-client latency, interleaved request by request: an uncached image (encode + decode)
   and a cached one (prompt decoder only), server vs bare ``Predictor``; min and median;
2. load: ``--clients`` threads x ``--requests`` each, mixing the adapters and vanilla, cached
   ("hot": a few images clicked again and again) and uncached images ("cold": every one new),
   boxes, points and some ``compare`` requests; p50/p95 latency, requests/s, errors (non-200),
   server RSS before/after and the cache's counters. Baseline: the same request list through
   the bare ``Predictor``, sequentially, as a service without a cache would run it (decode,
   ``use``, ``set_image``, ``predict`` for every request).

Bounded: at most ``--clients x --requests`` requests per round and ``--max-seconds`` in all; it
talks only to 127.0.0.1 and stops the server (SIGTERM) before it exits.

    .venv/bin/python benchmarks/serve_load.py [--clients 8] [--requests 50] [--rounds 2] [--max-seconds 600]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

from samlora.config import LoraSettings
from samlora.demo.domains import target_image
from samlora.lora.adapters import adapter_metadata, save_adapter
from samlora.lora.plan import apply_lora
from samlora.models.loading import load_model
from samlora.predict.predictor import Predictor
from samlora.tasks.postprocess import PostProcess

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
MODEL = "samlora-reference"
ADAPTERS = ("a1", "a2", "vanilla")
SETTINGS = LoraSettings(rank=4, components=["vision_encoder"], target_modules=["all-linear"], train_fully=["mask_decoder"])  # fmt: skip


def make_adapter(folder: Path, seed: int) -> Path:
    """A LoRA adapter of the reference model with perturbed weights (timing does not depend on them)."""
    loaded = load_model(MODEL)
    model, _ = apply_lora(loaded.model, loaded.spec, SETTINGS)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (p for p in model.parameters() if p.requires_grad):
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return save_adapter(model, folder, adapter_metadata(loaded, SETTINGS))


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def variant(pixels: np.ndarray, k: int) -> np.ndarray:
    """``pixels`` with one pixel changed: another file (another hash, so uncached), the same scene."""
    out = pixels.copy()
    out[k // 256 % 256, k % 256] ^= 1
    return out


def request_plan(n: int, seed: int, hot: list[np.ndarray], cold_start: int) -> list[dict]:
    """``n`` requests: adapter, image bytes (hot or a new cold variant), prompts, compare."""
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(n):
        base = hot[int(rng.integers(len(hot)))]
        cold = rng.random() < 0.3
        pixels = variant(base, cold_start + i) if cold else base
        x, y = (float(v) for v in rng.integers(40, 216, size=2))
        kind = rng.random()
        if kind < 0.4:
            prompts = {"points": [[x, y]], "labels": [1]}
        elif kind < 0.8:
            prompts = {"boxes": [[x - 30, y - 30, x + 30, y + 30]]}
        else:
            prompts = {
                "points": [[x, y], [x + 25, y]],
                "labels": [1, 0],
                "boxes": [[x - 35, y - 35, x + 35, y + 35]],
            }
        adapter = ADAPTERS[i % 3]
        compare = adapter != "vanilla" and rng.random() < 0.1
        plan.append(
            {"image": png(pixels), "prompts": prompts, "adapter": adapter, "compare": compare, "cold": cold}
        )
    return plan


class Direct:
    """The bare baseline: one Predictor in this process, no HTTP; ``encode`` decodes and encodes the image.

    Calls run on one worker thread, as the server runs them (on a loaded 2-core machine, torch in
    the main thread with 2 intra-op threads measured up to 50x slower than in a worker thread).
    """

    def __init__(self, adapters: dict[str, Path]):
        self.predictor = Predictor(MODEL, adapters=adapters, device="cpu")
        self.worker = ThreadPoolExecutor(1)

    def run(self, item: dict, encode: bool) -> None:
        self.worker.submit(self._run, item, encode).result()

    def _run(self, item: dict, encode: bool) -> None:
        names = [item["adapter"]] + (["vanilla"] if item["compare"] else [])
        for name in names:
            self.predictor.use(name)
            if encode:
                self.predictor.set_image(np.asarray(Image.open(io.BytesIO(item["image"])).convert("RGB")))
            p = item["prompts"]
            self.predictor.predict(
                boxes=p.get("boxes"), points=p.get("points"), point_labels=p.get("labels"),
                post=PostProcess(threshold=float("-inf")),
            )  # fmt: skip


def start_server(adapters: dict[str, Path], cache_size: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "samlora", "serve", "--model", MODEL, "--port", "0", "--device", "cpu",
           "--cache-size", str(cache_size)] + [f"--adapter={n}={d}" for n, d in adapters.items()]  # fmt: skip
    env = {**os.environ, "SAMLORA_LOG": "WARNING"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if found:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining its output
            return proc, found.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"the server did not start:\n{line}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def send(client, item: dict) -> tuple[float, int]:
    body = {"prompts": item["prompts"], "adapter": item["adapter"], "compare": item["compare"]}
    started = time.perf_counter()
    try:
        reply = client.post(
            "/predict", files={"image": ("x.png", item["image"])}, data={"request": json.dumps(body)}
        )
        status = reply.status_code
    except Exception:  # a refused or timed-out connection counts as an error
        status = 0
    return time.perf_counter() - started, status


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="Requests per client and round.")
    parser.add_argument("--rounds", type=int, default=2, help="Load rounds, each followed by its baseline.")
    parser.add_argument("--latency", type=int, default=15, help="Interleaved single-client samples per kind.")
    parser.add_argument("--cache-size", type=int, default=16)
    parser.add_argument(
        "--max-seconds", type=float, default=600, help="Stop issuing requests after this long."
    )
    args = parser.parse_args()
    import httpx

    torch.set_num_threads(min(2, torch.get_num_threads()))
    deadline = time.monotonic() + args.max_seconds
    rng = np.random.default_rng(0)
    hot = [target_image(rng, "A", 256)[0] for _ in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        adapters = {f"a{i}": make_adapter(Path(tmp) / f"a{i}", i) for i in (1, 2)}
        direct = Direct(adapters)
        proc, url = start_server(adapters, args.cache_size)
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                print(f"samlora serve at {url} (pid {proc.pid}), reference model, adapters a1 a2 + vanilla, "
                      f"cache {args.cache_size}, CPU, torch threads {torch.get_num_threads()}")  # fmt: skip
                # 1. single-client latency, interleaved
                lat = {k: [] for k in ("server miss", "direct miss", "server hit", "direct hit")}
                probe = request_plan(args.latency, 1, hot, cold_start=10_000)
                for item in probe:
                    item = {**item, "adapter": "a1", "compare": False}
                    miss = {**item, "image": png(variant(hot[0], 50_000 + len(lat["server miss"])))}
                    lat["server miss"].append(send(client, miss)[0])
                    t = time.perf_counter()
                    direct.run(miss, encode=True)
                    lat["direct miss"].append(time.perf_counter() - t)
                    hit = {**item, "image": png(hot[0])}
                    send(client, hit)  # make sure it is cached
                    lat["server hit"].append(send(client, hit)[0])
                    t = time.perf_counter()
                    direct.run(hit, encode=False)
                    lat["direct hit"].append(time.perf_counter() - t)
                print(f"\nsingle client, ms (interleaved, {args.latency} samples each)")
                print(
                    f"{'kind':<12} {'server min':>10} {'server med':>10} {'bare min':>9} {'bare med':>9} {'ratio med':>9}"
                )
                for kind in ("miss", "hit"):
                    s, d = lat[f"server {kind}"], lat[f"direct {kind}"]
                    print(f"{'uncached' if kind == 'miss' else 'cached':<12} {1e3 * min(s):>10.1f} {1e3 * statistics.median(s):>10.1f} "
                          f"{1e3 * min(d):>9.1f} {1e3 * statistics.median(d):>9.1f} {statistics.median(s) / statistics.median(d):>9.2f}")  # fmt: skip
                # 2. load rounds, each followed by the bare baseline on the same requests
                print(f"\nload: {args.clients} clients x {args.requests} requests per round "
                      "(adapters a1/a2/vanilla in turn, 30% uncached images, 10% compare)")  # fmt: skip
                print(f"{'round':<6} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} {'bare req/s':>10} {'ratio':>6} "
                      f"{'errors':>6} {'RSS before':>10} {'RSS after':>9}")  # fmt: skip
                cold_start = 0
                for r in range(args.rounds):
                    if time.monotonic() > deadline:
                        print("time limit reached; stopping")
                        break
                    plans = [
                        request_plan(args.requests, 100 * r + c, hot, cold_start + 1000 * c)
                        for c in range(args.clients)
                    ]
                    cold_start += 1000 * args.clients
                    before = rss_mib(proc.pid)

                    def one_client(plan: list[dict]) -> list[tuple[float, int]]:
                        with httpx.Client(base_url=url, timeout=120) as own:
                            return [send(own, item) for item in plan if time.monotonic() < deadline]

                    started = time.perf_counter()
                    with ThreadPoolExecutor(args.clients) as pool:
                        done = [x for one in pool.map(one_client, plans) for x in one]
                    wall = time.perf_counter() - started
                    after = rss_mib(proc.pid)
                    times = [t for t, status in done if status == 200]
                    errors = sum(status != 200 for _, status in done)
                    started = time.perf_counter()
                    for item in [x for plan in plans for x in plan][: len(done)]:
                        direct.run(item, encode=True)
                    bare = len(done) / (time.perf_counter() - started)
                    rate = len(done) / wall
                    print(f"{r + 1:<6} {1e3 * percentile(times, 50):>8.1f} {1e3 * percentile(times, 95):>8.1f} "
                          f"{rate:>7.1f} {bare:>10.1f} {rate / bare:>6.2f} {errors:>6} {before:>8.0f} M {after:>7.0f} M")  # fmt: skip
                print("\nserver /health after the load:", json.dumps(client.get("/health").json()))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            print(f"server stopped, exit status {proc.returncode}")


if __name__ == "__main__":
    main()
