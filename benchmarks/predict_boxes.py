"""Prediction with 1, 16 and 64 box prompts per image: `Predictor` vs bare `SamModel` calls (A/B).

The shipped reference model on 1024-px photos. Bare: ``get_image_embeddings`` once, one
``SamModel`` call with every box, masks upsampled to the original size (to the input frame,
crop, to the image) and thresholded. samlora: ``Predictor.set_image`` + ``predict(boxes=...)``
with a score threshold (masks at the original resolution, boxes, scores). The cost of each extra
box is ``(t(64) - t(1)) / 63``, compared with the time of one image encode.

    .venv/bin/python benchmarks/predict_boxes.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from ab import interleaved, print_table, summary

from samlora.models.presets import preset_folder
from samlora.predict.predictor import Predictor
from samlora.tasks.postprocess import PostProcess


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="samlora-reference")
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from transformers import SamModel

    model_dir = str(preset_folder(args.model) or args.model)
    bare = SamModel.from_pretrained(model_dir).eval()
    predictor = Predictor(model_dir, device="cpu")
    pre = predictor.loaded.preprocessing
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    side = pre.image_size
    post = PostProcess(threshold=0.0)

    def boxes(k: int) -> np.ndarray:
        xy = rng.uniform(0, args.size * 0.7, (k, 2))
        return np.concatenate([xy, xy + rng.uniform(20, args.size * 0.3, (k, 2))], 1).astype(np.float32)

    @torch.no_grad()
    def bare_call(k: int) -> None:
        pixels = pre.images([torch.from_numpy(image).permute(2, 0, 1)])  # the same input, made once per call
        emb = bare.get_image_embeddings(pixels)
        scale = side / args.size
        out = bare(
            image_embeddings=emb, input_boxes=torch.from_numpy(boxes(k) * scale)[None], multimask_output=False
        )
        masks = F.interpolate(
            out.pred_masks[0, :, :1], size=(side, side), mode="bilinear", align_corners=False
        )
        masks = F.interpolate(masks, size=(args.size, args.size), mode="bilinear", align_corners=False) > 0
        masks.numpy()

    def ours(k: int) -> None:
        predictor.set_image(image)
        predictor.predict(boxes=boxes(k), post=post)

    cases = {}
    for k in (1, 16, 64):
        cases[f"samlora {k}"] = lambda k=k: ours(k)
        cases[f"bare {k}"] = lambda k=k: bare_call(k)
    cases["encode"] = lambda: predictor.set_image(image)
    times = interleaved(cases, args.repeats)
    enc_min, enc_med = summary(times["encode"])
    rows = []
    for k in (1, 16, 64):
        (a_min, a_med), (b_min, b_med) = summary(times[f"samlora {k}"]), summary(times[f"bare {k}"])
        rows.append((str(k), f"{a_min * 1e3:.0f} / {a_med * 1e3:.0f}", f"{b_min * 1e3:.0f} / {b_med * 1e3:.0f}",
                     f"{a_min / b_min:.2f}x / {a_med / b_med:.2f}x"))  # fmt: skip
    print_table(
        f"{args.model}, {args.size} x {args.size} image, {args.repeats} repeats; one encode: "
        f"{enc_min * 1e3:.0f} / {enc_med * 1e3:.0f} ms (min / median)",
        rows,
        ("boxes", "samlora ms (min / median)", "bare ms (min / median)", "time vs bare (min / median)"),
    )
    for name in ("samlora", "bare"):
        t1, t64 = summary(times[f"{name} 1"]), summary(times[f"{name} 64"])
        per = [(b - a) / 63 for a, b in zip(t1, t64)]
        print(
            f"{name}: each extra box costs {per[0] * 1e3:.2f} / {per[1] * 1e3:.2f} ms = "
            f"{per[0] / enc_min:.1%} / {per[1] / enc_med:.1%} of one encode (min / median)"
        )


if __name__ == "__main__":
    main()
