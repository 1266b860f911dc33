"""A `samlora train` step vs a bare transformers + PEFT loop written here (interleaved A/B).

Same model (the shipped reference model, 256 px), LoRA targets (rank 4 on every linear layer of
the vision encoder, mask decoder fully trained, as the medical preset), batch 2, the same
1024-px JPEGs and masks, box prompts, Dice + focal loss on the decoder's low-res masks. The
bare loop decodes each JPEG with PIL, resizes it, and trains; samlora runs its whole pipeline
(decoded cache, device batch, no host syncs), with and without augmentation (flip, scale,
colour). Throughput is images/s of the training loop (start-up excluded on both sides).

    .venv/bin/python benchmarks/train_step.py [--images 16] [--steps 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ab import bare_decode, jpeg_mask_set, print_table, summary
from scipy import ndimage

from samlora.config import config_from_dict
from samlora.models.presets import preset_folder
from samlora.training.log import read_log
from samlora.training.trainer import train

BATCH = 2


def bare_loop(model_dir: str, pairs: list, steps: int) -> float:
    """images/s of a plain transformers + PEFT training loop on ``pairs``."""
    from peft import LoraConfig, get_peft_model
    from transformers import SamModel

    torch.manual_seed(0)
    model = SamModel.from_pretrained(model_dir)
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith("vision_encoder.")
    ]
    model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=1, target_modules=names, modules_to_save=["mask_decoder"])
    )
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    side = model.config.vision_config.image_size
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        batch = [bare_decode(*pairs[(step * BATCH + i) % len(pairs)], side) for i in range(BATCH)]
        pixels = torch.zeros(BATCH, 3, side, side)
        boxes, targets, index = [], [], []
        for b, (image, mask) in enumerate(batch):
            h, w = image.shape[:2]
            pixels[b, :, :h, :w] = torch.from_numpy(image.copy()).permute(2, 0, 1).float()
            small = (
                F.interpolate(torch.from_numpy(mask > 127)[None, None].float(), size=(h, w), mode="nearest")[
                    0, 0
                ]
                > 0.5
            )
            labels, count = ndimage.label(small.numpy())
            for k in range(1, min(count, 8) + 1):
                ys, xs = np.nonzero(labels == k)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                full = torch.zeros(side, side)
                full[:h, :w] = torch.from_numpy(labels == k).float()
                targets.append(
                    F.interpolate(full[None, None], size=(side // 4, side // 4), mode="area")[0, 0]
                )
                index.append(b)
        pixels = (pixels - mean) / std
        # not model.get_image_embeddings: transformers runs it under no_grad, so the encoder's LoRA would never train
        emb = model.vision_encoder(pixels).last_hidden_state
        out = model(
            image_embeddings=emb[torch.tensor(index)],
            input_boxes=torch.tensor(boxes, dtype=torch.float32)[:, None],
            multimask_output=False,
        )
        logits = out.pred_masks[:, 0, 0]
        target = torch.stack(targets)
        prob = logits.sigmoid()
        dice = 1 - (2 * (prob * target).sum((1, 2)) + 1) / (prob.sum((1, 2)) + target.sum((1, 2)) + 1)
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = prob * target + (1 - prob) * (1 - target)
        focal = (ce * (1 - p_t) ** 2 * (0.25 * target + 0.75 * (1 - target))).mean((1, 2))
        loss = (dice + 20 * focal).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        float(loss)  # a bare loop prints its loss
    return steps * BATCH / (time.perf_counter() - start)


def samlora_loop(model: str, root: Path, out: Path, steps: int, augment: bool) -> float:
    """images/s of the training loop of ``samlora train`` (its own measure, start-up excluded)."""
    aug = (
        {"hflip": 0.5, "scale_min": 0.8, "scale_max": 1.2, "brightness": 0.2, "contrast": 0.2}
        if augment
        else {"enabled": False}
    )
    cfg = config_from_dict(
        {
            "model": {"name": model},
            "lora": {"rank": 4, "alpha": 1, "components": ["vision_encoder"], "target_modules": ["all-linear"],
                     "train_fully": ["mask_decoder"]},
            "data": {"root": str(root), "cache": True, "val_fraction": 0.0, "mask_type": "binary"},
            "prompts": {"modes": ["box"]},
            "augment": aug,
            "train": {"max_steps": steps, "batch_size": BATCH, "num_workers": 0, "log_every": steps,
                      "trackers": ["none"], "lr": 3e-4},
            "output": {"dir": str(out), "overwrite": True},
        }
    )  # fmt: skip
    train(cfg)
    return [r for r in read_log(out) if r["split"] == "train"][-1]["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="samlora-reference")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model_dir = str(preset_folder(args.model) or args.model)
    with tempfile.TemporaryDirectory() as tmp:
        root = jpeg_mask_set(Path(tmp) / "data", args.images)
        pairs = sorted(
            zip(sorted((root / "train/images").glob("*.jpg")), sorted((root / "train/masks").glob("*.png")))
        )
        rates: dict[str, list[float]] = {"bare": [], "samlora": [], "samlora+aug": []}
        for _ in range(args.repeats):  # interleaved: A, B, A', B, ...
            rates["samlora"].append(samlora_loop(model_dir, root, Path(tmp) / "run", args.steps, False))
            rates["bare"].append(bare_loop(model_dir, pairs, args.steps))
            rates["samlora+aug"].append(samlora_loop(model_dir, root, Path(tmp) / "run", args.steps, True))
        rows = []
        b_min, b_med = summary([1 / r for r in rates["bare"]])
        for name in ("samlora", "samlora+aug"):
            a_min, a_med = summary([1 / r for r in rates[name]])
            rows.append((name, f"{1 / a_min:.2f} / {1 / a_med:.2f}", f"{1 / b_min:.2f} / {1 / b_med:.2f}",
                         f"{a_min / b_min:.2f}x / {a_med / b_med:.2f}x"))  # fmt: skip
        print_table(
            f"{args.model}, batch {BATCH}, {args.steps} steps, {args.images} JPEGs of 1024 px, {args.repeats} repeats",
            rows,
            (
                "loop",
                "images/s (best / median)",
                "bare images/s (best / median)",
                "step time vs bare (best / median)",
            ),
        )


if __name__ == "__main__":
    main()
