"""``samlora predict``: run a base model with an adapter on an image, a folder or a glob."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser

from samlora.errors import SamloraError

from .registry import command, handles


@command("predict", help="Segment images with a model (+ adapter) from box, point or text prompts.")
def predict_parser() -> ArgumentParser:
    p = ArgumentParser(
        description="Predict masks for an image, a folder or a glob; writes overlays, mask PNGs and COCO JSON."
    )
    p.add_argument(
        "source", nargs="?", default=None, help="An image, a folder of images, or a glob ('photos/*.jpg')."
    )
    p.add_argument("--image", default=None, help="The same as SOURCE (the SAM3-LoRA tool's flag).")
    p.add_argument(
        "--output",
        default="samlora-predictions",
        help="Folder for overlays/, masks/, predictions.json; a name ending in an image extension (result.png) "
        "writes that one overlay plus result.json beside it (one image only).",
    )
    p.add_argument("--model", default=None, help="Base model (default: the one the adapter records).")
    p.add_argument("--adapter", default=None, help="Adapter folder, or a run folder (its best/ is used).")
    p.add_argument(
        "--onnx",
        default=None,
        help="Run a folder written by `samlora export onnx` on onnxruntime instead of PyTorch (box/point "
        "prompts; same post-processing and outputs; --precision fp16 uses its fp16 graphs).",
    )
    p.add_argument(
        "--prompt",
        nargs="+",
        default=None,
        help="Text prompts for concept models, e.g. --prompt crack spalling. Post-processing (threshold, "
        "NMS, merge, top-k) applies per prompt; box/point prompts are one object each, so only threshold, "
        "min-area and fill-holes apply to them.",
    )
    p.add_argument("--box", nargs=4, action="append", default=None, metavar=("X1", "Y1", "X2", "Y2"),
                   help="A box prompt in pixels (repeatable: one mask per box).")  # fmt: skip
    p.add_argument("--point", nargs=2, action="append", default=None, metavar=("X", "Y"),
                   help="A point prompt in pixels (repeatable; all points describe one object; "
                        "with --box, exactly one box).")  # fmt: skip
    p.add_argument("--label", action="append", default=None,
                   help="Label of each --point: 1 foreground (default), 0 background.")  # fmt: skip
    p.add_argument(
        "--prompts",
        default=None,
        help='JSON file {"img.jpg": {"boxes": [[x1,y1,x2,y2]], "points": [[x,y]] or [[[x,y],...],...] '
        '(one point set per object), "labels": [1, 0]}}, or a COCO file (its boxes, keeping their '
        "category ids). Checked whole before anything runs.",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="Minimum score: detection score for text prompts (default 0.5); predicted IoU for box/point "
        "prompts (default: none, every prompted object is kept).",
    )
    p.add_argument("--nms-iou", type=float, default=0.5, help="NMS IoU threshold, text prompts (1 disables).")
    p.add_argument("--nms-kind", default="mask", choices=["mask", "box"], help="NMS on mask or box IoU.")
    p.add_argument(
        "--top-k", type=int, default=100, help="At most this many instances per image and text prompt."
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="Merge overlapping segments of one text prompt (crack-like objects).",
    )
    p.add_argument(
        "--min-area",
        type=int,
        default=0,
        help="Drop instances smaller than this many pixels, and remove the specks (connected pieces) smaller than "
        "it from the masks kept (any prompt; empty masks are always dropped).",
    )
    p.add_argument(
        "--keep-specks", action="store_true", help="With --min-area, leave small pieces inside kept masks."
    )
    p.add_argument(
        "--fill-holes", action="store_true", help="Fill holes inside predicted masks (any prompt)."
    )
    p.add_argument(
        "--mask-threshold",
        type=float,
        default=0.0,
        help="Mask logit above which a pixel is foreground (default 0, i.e. probability 0.5).",
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=0,
        help="Working resolution: shrink images whose longest side exceeds this before encoding "
        "(0: original size). Outputs stay at each image's original resolution.",
    )
    p.add_argument("--no-boxes", action="store_true", help="Overlays without boxes, labels and scores.")
    p.add_argument(
        "--boundingbox",
        default=None,
        metavar="true|false",
        help="Draw boxes, labels and scores on overlays (default true; false is --no-boxes; the SAM3-LoRA tool's flag).",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="Where to run.")
    p.add_argument(
        "--precision",
        default="no",
        choices=["no", "fp32", "bf16", "fp16"],
        help="Autocast precision (no = fp32).",
    )
    p.add_argument("--batch-size", type=int, default=1, help="Images encoded together in one forward pass.")
    p.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="Refuse images over N pixels (width x height) before decoding them (default: data.max_pixels' "
        "default, 50 MP; 0: any size).",
    )  # fmt: skip
    p.add_argument(
        "--compare", action="store_true", help="Also write adapter | vanilla (| ground truth) panels."
    )
    return p


@handles("predict")
def run_predict_cmd(args: dict[str, Any]) -> int:
    from pathlib import Path

    from samlora.data.images import IMAGE_EXTENSIONS
    from samlora.io.disk import check_writable
    from samlora.predict.predictor import Predictor, resolve_adapter
    from samlora.predict.run import ImagePrompts, run_predict
    from samlora.tasks.postprocess import PostProcess

    source = _source(args.get("source"), args.get("image"))
    draw_boxes = _draw_boxes(args.get("boundingbox"), bool(args.get("no_boxes")))
    adapter = str(resolve_adapter(args["adapter"])) if args.get("adapter") else None
    if args.get("onnx") and (args.get("model") or adapter or args.get("compare")):
        raise SamloraError(
            "--onnx runs the exported model (its adapter merged in): drop --model, --adapter and --compare"
        )
    if not args.get("model") and not adapter and not args.get("onnx"):
        raise SamloraError("pass --model NAME and/or --adapter DIR (or --onnx DIR)")
    boxes = [[_number(v, "--box") for v in box] for box in args.get("box") or []]
    points = [[_number(v, "--point") for v in point] for point in args.get("point") or []]
    labels = [int(_number(v, "--label")) for v in args.get("label") or []]
    if any(v not in (0, 1) for v in labels):
        raise SamloraError(f"--label takes 1 (foreground) or 0 (background), got {labels}")
    if labels and len(labels) != len(points):
        raise SamloraError(
            f"got {len(points)} --point and {len(labels)} --label; give one label per point or none"
        )
    if points and len(boxes) > 1:
        raise SamloraError(
            f"got {len(boxes)} --box and {len(points)} --point: all --point describe one object, which one "
            "--box may frame; use one --box with the points, or a --prompts file for several objects"
        )
    if args.get("compare") and not adapter:
        raise SamloraError("--compare shows adapter vs vanilla: pass --adapter DIR")
    texts = args.get("prompt")
    threshold = args.get("threshold")
    post = PostProcess(
        threshold=threshold if threshold is not None else (0.5 if texts else float("-inf")), nms_iou=args["nms_iou"],
        nms_kind=args["nms_kind"], top_k=args["top_k"], min_area=args["min_area"],
        merge=bool(args.get("merge")), fill_holes=bool(args.get("fill_holes")),
        mask_threshold=args["mask_threshold"], keep_specks=bool(args.get("keep_specks")),
    )  # fmt: skip
    prompts = ImagePrompts(boxes=boxes, points=points, labels=labels)
    category_ids = _category_ids(adapter, texts) if texts else None
    output = Path(args["output"])  # a folder, or one overlay file (--output result.png)
    check_writable(output.parent if output.suffix.lower() in IMAGE_EXTENSIONS else output, "--output")
    if args.get("onnx"):
        predictor = Predictor(backend=_onnx_backend(args), resolution=args["resolution"])
    else:
        predictor = Predictor(
            args.get("model"),
            adapters=[adapter] if adapter else None,
            device=args["device"],
            precision=args["precision"],
            resolution=args["resolution"],
        )
    summary = run_predict(
        predictor, source, args["output"], prompts, texts=texts, prompt_file=args.get("prompts"),
        post=post, compare=bool(args.get("compare")), category_ids=category_ids, batch_size=args["batch_size"],
        draw_boxes=draw_boxes, max_pixels=args.get("max_pixels"),
    )  # fmt: skip
    print(
        f"{summary.images} images, {summary.detections} detections, {summary.images_per_s:.2f} images/s -> {args['output']}"
    )
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} file(s):")
        for name, why in summary.skipped:
            print(f"  {name}: {why}")
    if summary.unmatched:
        print(f"{len(summary.unmatched)} entr{'y' if len(summary.unmatched) == 1 else 'ies'} of {args['prompts']} "
              "matched no image and were not used:")  # fmt: skip
        for name in summary.unmatched:
            print(f"  {name}")
    return 0


def _onnx_backend(args: dict[str, Any]) -> object:
    """The onnxruntime backend of ``--onnx DIR`` (fp16 graphs with ``--precision fp16``)."""
    from samlora.export.runtime import OnnxBackend

    if args["precision"] == "bf16" or args["device"] == "mps":
        raise SamloraError(
            "--onnx runs fp32 or fp16 graphs on cpu or cuda; use --precision no|fp16, --device auto|cpu|cuda"
        )
    if args.get("prompt"):
        raise SamloraError(
            "--onnx runs box and point prompts; text prompts (SAM 3) run in PyTorch with --model"
        )
    precision = "fp16" if args["precision"] == "fp16" else "fp32"
    return OnnxBackend(args["onnx"], device=args["device"], precision=precision)


def _source(source: str | None, image: str | None) -> str:
    """SOURCE or --image (one of them)."""
    if source and image and source != image:
        raise SamloraError(
            f"got SOURCE {source} and --image {image}: --image is the same as SOURCE, pass one"
        )
    if not (source or image):
        raise SamloraError(
            "pass what to predict: samlora predict SOURCE (an image, a folder or a glob) or --image PATH"
        )
    return str(source or image)


def _draw_boxes(boundingbox: str | None, no_boxes: bool) -> bool:
    """Whether overlays get boxes: ``--boundingbox true|false`` (any case, 1/0, yes/no), else not ``--no-boxes``."""
    if boundingbox is None:
        return not no_boxes
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
        boundingbox.lower()
    )
    if value is None:
        raise SamloraError(f"--boundingbox takes true or false, got '{boundingbox}'")
    if value and no_boxes:
        raise SamloraError("--boundingbox true and --no-boxes contradict each other; pass one")
    return value


def _category_ids(adapter: str | None, texts: list[str]) -> dict[str, int]:
    """Category id per text prompt: an adapter class name keeps its data set id; others get ids above all known."""
    names: dict = {}
    if adapter:
        from samlora.lora.adapters import read_adapter

        names = read_adapter(adapter).get("class_names") or {}
    known = {str(name).lower(): int(cid) for cid, name in names.items()}
    fresh = max(known.values(), default=0) + 1
    out: dict[str, int] = {}
    for text in texts:
        if text.lower() in known:
            out[text] = known[text.lower()]
        elif text not in out:
            out[text] = fresh
            fresh += 1
    return out


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SamloraError(f"{flag} takes numbers (pixels), got '{text}'") from None
