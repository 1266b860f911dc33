"""Training-step cost of the reference model's mask resolution: ViT patch 16 (shipped) vs patch 8.

The reference model's source-domain Dice is limited by its 64 x 64 mask logits (patch 16 on
256 px inputs, see its MODEL_CARD.md). Patch 8 gives a 32 x 32 token grid and 128 x 128 logits;
this script measures what that costs per pretraining step (8 images x 8 box prompts, multimask,
forward + backward + AdamW), to decide whether it fits the pretraining budget of well under an
hour on 2 CPU cores.

    .venv/bin/python benchmarks/reference_resolution_cost.py [--steps 4] [--batch 8] [--objects 8]
"""

from __future__ import annotations

import argparse
import time

import torch
import transformers

from samlora.demo.reference import IMAGE_SIZE, count_parameters, reference_config, torch_default_init


def model_for(patch: int) -> transformers.SamModel:
    """The reference architecture with ViT patch ``patch`` (the prompt encoder follows the token grid)."""
    cfg = reference_config(patch_size=patch)
    cfg.prompt_encoder_config.patch_size = patch
    cfg.prompt_encoder_config.image_embedding_size = IMAGE_SIZE // patch
    model = transformers.SamModel(cfg)
    torch_default_init(model)
    return model


def step_seconds(model: transformers.SamModel, batch: int, objects: int, steps: int) -> float:
    """Median seconds of one training step on random inputs (the first step is a warm-up)."""
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    pixels = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE)
    boxes = torch.tensor([[20.0, 20.0, 120.0, 120.0]]).repeat(batch, objects, 1)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        out = model(pixel_values=pixels, input_boxes=boxes, multimask_output=True)
        loss = out.pred_masks.square().mean() + out.iou_scores.mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--objects", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch threads {torch.get_num_threads()}; {args.batch} images x {args.objects} boxes per step")
    print("| patch | tokens | mask logits | parameters | s/step |")
    print("|---|---|---|---|---|")
    for patch in (16, 8):
        model = model_for(patch)
        grid = IMAGE_SIZE // patch
        seconds = step_seconds(model, args.batch, args.objects, args.steps)
        print(
            f"| {patch} | {grid} x {grid} | {4 * grid} x {4 * grid} | {count_parameters(model):,} | {seconds:.2f} |"
        )


if __name__ == "__main__":
    main()
