"""Training images per second: one optimiser step of promptable LoRA training at the model's input size.

Models: the tiny SAM preset (64 px) and a randomly initialised SAM ViT-B (1024 px,
transformers' default SamConfig). Each step encodes every image once and
decodes ``--objects`` box prompts per image; LoRA rank 8 on the vision
encoder's attention and MLP, mask decoder fully trained, the full loss.

    .venv/bin/python benchmarks/train_throughput.py [--models tiny vit-b] [--steps 2] [--batch-size 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import transformers

from samlora.config import config_from_dict
from samlora.lora.plan import apply_lora
from samlora.models.loading import load_model
from samlora.tasks.promptable.task import PromptableTask

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def vit_b_folder(tmp: Path) -> Path:
    torch.manual_seed(0)
    folder = tmp / "sam-vit-b-random"
    transformers.SamModel(transformers.SamConfig()).save_pretrained(folder)
    return folder


def measure(
    name: str, steps: int, batch: int, objects: int, precision: str, device: torch.device, data_root: Path
) -> dict:
    cfg = config_from_dict(
        {
            "model": {"name": name},
            "lora": {
                "rank": 8,
                "components": ["vision_encoder"],
                "target_modules": ["attention", "mlp"],
                "train_fully": ["mask_decoder"],
            },
            "data": {"root": str(data_root), "objects_per_image": objects, "mask_type": "instance"},
            "prompts": {"modes": ["box"]},
            "train": {"num_workers": 0},
        }
    )
    loaded = load_model(name, device=device)
    params = sum(p.numel() for p in loaded.model.parameters())
    model, _ = apply_lora(loaded.model, loaded.spec, cfg.lora)
    task = PromptableTask(loaded, cfg)
    train_set, _ = task.datasets()
    module = task.module(model).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    samples = [train_set[i % len(train_set)] for i in range(batch)]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    times = []
    for step in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = task.train_loss(module, samples, torch.Generator().manual_seed(step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_time = sum(times[1:]) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {
        "input": loaded.preprocessing.image_size,
        "params": params,
        "step_s": step_time,
        "images_s": batch / step_time,
        "peak_gib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from samlora.data.synthetic import write_mask_split

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_mask_split(data / "train", 4, seed=0, size=(1024, 1024), instance=True)
        print(
            f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, {args.objects} objects/image, precision {args.precision}"
        )
        print(f"{'model':<8} {'params':>12} {'input':>6} {'s/step':>8} {'images/s':>9} {'peak GiB':>9}")
        for model in args.models:
            name = "tiny-sam" if model == "tiny" else str(vit_b_folder(Path(tmp)))
            r = measure(name, args.steps, args.batch_size, args.objects, args.precision, device, data)
            print(
                f"{model:<8} {r['params']:>12,} {r['input']:>6} {r['step_s']:>8.3f} {r['images_s']:>9.2f} {r['peak_gib']:>9.2f}"
            )


if __name__ == "__main__":
    main()
