"""The GPU suite: training images/s and peak GPU memory of the issue's cases, in one script.

Run on one H100/H200 (about 5-8 minutes; random weights from transformers' default configs, no
download)::

    .venv/bin/python benchmarks/gpu_suite.py                 # the full cases, bf16, on cuda
    .venv/bin/python benchmarks/gpu_suite.py --tiny          # tiny models, on the CPU (a dry run)

Cases (``samlora train`` end to end on generated data, start-up excluded from images/s):

1. SAM ViT-B (default ``SamConfig``), 1024 px, LoRA rank 8 on q/v of the vision encoder + the
   mask decoder trained, bf16, batch 8 (target: at least 180 images/s on an H100); then the same
   with ``model.attention: flex`` (FlexAttention instead of the dense relative-position bias;
   skipped in the CPU dry run, where FlexAttention has no backward);
2. SAM 2.1 Hiera-B+ (its published backbone sizes), 1024 px, same LoRA, bf16, batch 8;
3. SAM 3 tracker (default ``Sam3TrackerConfig``), 1008 px, same LoRA, bf16, batch 8;
4. SAM 3 concept training (default ``Sam3Config``), LoRA rank 16 on vision + text encoders, DETR
   encoder/decoder and mask decoder, batch 1, bf16, without and with activation checkpointing
   (target: at most 16 GB);
5. prediction: SAM ViT-B, 16 images x 8 boxes, bf16 (images/s).

Peak memory is ``torch.cuda.max_memory_allocated`` per case (the process's peak RSS growth on
the CPU). Figures go into benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from samlora.config import config_from_dict
from samlora.data.synthetic import write_coco_dataset, write_mask_dataset
from samlora.models.tiny import save_tiny_model, tiny_tokenizer
from samlora.training.log import read_log
from samlora.training.trainer import train

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

HIERA_B_PLUS = {
    "hidden_size": 112,
    "num_attention_heads": 2,
    "blocks_per_stage": [2, 3, 16, 3],
    "embed_dim_per_stage": [112, 224, 448, 896],
    "num_attention_heads_per_stage": [2, 4, 8, 16],
    "window_size_per_stage": [8, 4, 14, 7],
    "global_attention_blocks": [12, 16, 20],
    "window_positional_embedding_background_size": [14, 14],
}


def full_model(family: str, folder: Path) -> Path:
    """A randomly initialised full-size model of ``family`` saved to ``folder``."""
    if family == "sam":
        model = transformers.SamModel(transformers.SamConfig())
    elif family == "sam2":
        config = transformers.Sam2Config(
            vision_config={"backbone_config": HIERA_B_PLUS, "backbone_channel_list": [896, 448, 224, 112]}
        )
        model = transformers.Sam2Model(config)
    elif family == "sam3_tracker":
        model = transformers.Sam3TrackerModel(transformers.Sam3TrackerConfig())
    else:
        model = transformers.Sam3Model(transformers.Sam3Config())
        tiny_tokenizer().save_pretrained(folder)  # any CLIP tokenizer: the weights are random anyway
    model.save_pretrained(folder)
    del model
    return folder


def input_size(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text())
    if "prompt_encoder_config" in config:
        size = config["prompt_encoder_config"].get("image_size", 1024)
    else:
        size = config["vision_config"].get("backbone_config", {}).get("image_size", 1008)
    return int(size[0] if isinstance(size, list) else size)


def peak_memory(device: str) -> float:
    """GiB: CUDA's peak allocation, or this process's peak RSS on the CPU."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def train_case(
    model_dir: Path,
    data: Path,
    out: Path,
    args,
    batch: int,
    lora: dict,
    concept: bool,
    checkpointing: bool | str = False,
) -> dict:
    """One training case; ``checkpointing``: True (activation checkpointing) or "flex" (FlexAttention)."""
    cfg = config_from_dict(
        {
            "model": {"name": str(model_dir), "gradient_checkpointing": checkpointing is True,
                      "attention": "flex" if checkpointing == "flex" else "sdpa"},
            "lora": lora,
            "data": {"root": str(data), "cache": True, "val_fraction": 0.0},
            "prompts": {"modes": ["box"]} if not concept else {},
            "augment": {"hflip": 0.5},
            "loss": {"resolution": "low_res"},
            "train": {"max_steps": args.steps, "batch_size": batch, "num_workers": 2, "log_every": args.steps,
                      "trackers": ["none"], "precision": args.precision, "device": args.device},
            "output": {"dir": str(out), "overwrite": True},
        }
    )  # fmt: skip
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = peak_memory(args.device)
    started = time.perf_counter()
    train(cfg)
    record = [r for r in read_log(out) if r["split"] == "train"][-1]
    memory = peak_memory(args.device) - (0 if args.device == "cuda" else before)
    return {
        "images_per_s": record["images_per_s"],
        "peak_gib": memory,
        "wall_s": time.perf_counter() - started,
    }


def predict_case(model_dir: Path, args) -> dict:
    from samlora.predict.predictor import Predictor

    predictor = Predictor(
        str(model_dir), device=args.device, precision=args.precision if args.device == "cuda" else "no"
    )
    rng = np.random.default_rng(0)
    size = 1024 if not args.tiny else 64
    images = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(args.predict_images)]
    step = size // 32
    boxes = [{"boxes": [[step * k, step, size // 2 + step * k, size // 2] for k in range(8)]} for _ in images]
    predictor.predict_batch(images[:2], boxes[:2])  # warm-up
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for first in range(0, len(images), 4):
        predictor.predict_batch(images[first : first + 4], boxes[first : first + 4])
    if args.device == "cuda":
        torch.cuda.synchronize()
    return {
        "images_per_s": len(images) / (time.perf_counter() - started),
        "peak_gib": peak_memory(args.device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny models on the CPU: checks the script, not the GPU"
    )
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per training case")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    args = parser.parse_args()
    args.device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    args.precision = "bf16" if args.device == "cuda" else "no"
    args.steps = args.steps or (3 if args.tiny else 30)
    args.predict_images = 4 if args.tiny else 16
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models: dict[str, Path] = {}

        def model(family: str) -> Path:
            if family not in models:
                folder = tmp / f"model-{family}"
                models[family] = save_tiny_model(family, folder) if args.tiny else full_model(family, folder)
            return models[family]

        promptable_lora = {"rank": 8, "components": ["vision_encoder"], "target_modules": ["q_proj", "v_proj"],
                           "train_fully": ["mask_decoder"]}  # fmt: skip
        concept_lora = {"rank": 16, "alpha": 32, "components": ["vision_encoder", "text_encoder", "detr_encoder",
                        "detr_decoder", "mask_decoder"], "target_modules": ["q_proj", "k_proj", "v_proj", "out_proj"]}  # fmt: skip
        cases = [
            ("SAM ViT-B LoRA, batch 8", "sam", 8, promptable_lora, False, False),
            ("SAM ViT-B LoRA, batch 8, flex attention", "sam", 8, promptable_lora, False, "flex"),
            ("SAM 2.1 Hiera-B+ LoRA, batch 8", "sam2", 8, promptable_lora, False, False),
            ("SAM 3 tracker LoRA, batch 8", "sam3_tracker", 8, promptable_lora, False, False),
            ("SAM 3 concept r16, batch 1", "sam3", 1, concept_lora, True, False),
            ("SAM 3 concept r16, batch 1, checkpointing", "sam3", 1, concept_lora, True, True),
        ]
        for name, family, batch, lora, concept, checkpointing in cases:
            if args.only and family not in args.only:
                continue
            if checkpointing == "flex" and args.device != "cuda":
                print(f"{name}: skipped (FlexAttention has no backward on the CPU)", flush=True)
                continue
            folder = model(family)
            size = input_size(folder)
            data = tmp / f"data-{family}"
            if not data.exists():
                n = max(2 * batch, 4) if args.tiny else max(8 * batch, 32)
                if concept:
                    write_coco_dataset(data, n_train=n, n_valid=0, seed=0, size=size)
                else:
                    write_mask_dataset(data, n_train=n, n_valid=0, seed=0, size=size)
            result = train_case(folder, data, tmp / "run", args, batch, lora, concept, checkpointing)
            rows.append((name, size, result))
            print(
                f"{name}: {result['images_per_s']:.1f} images/s, peak {result['peak_gib']:.2f} GiB",
                flush=True,
            )
            gc.collect()
        if not args.only or "predict" in args.only:
            result = predict_case(model("sam"), args)
            rows.append(("SAM ViT-B prediction, 8 boxes per image", 64 if args.tiny else 1024, result))
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (tiny models: a dry run)"
    print(f"\n{device}, precision {args.precision}, {args.steps} steps per training case\n")
    print("| case | input px | images/s | peak memory GiB |")
    print("|---|---|---|---|")
    for name, size, result in rows:
        print(f"| {name} | {size} | {result['images_per_s']:.1f} | {result['peak_gib']:.2f} |")


if __name__ == "__main__":
    main()
