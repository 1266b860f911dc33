"""A table of malformed inputs of every kind samlora reads, each given to the CLI.

Every row must end in a clean refusal: exit status 2 (1 for `data check`, whose report lists the
problem), a message naming the problem, no traceback, and nothing already on disk changed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlora.cli import main
from samlora.data.synthetic import write_coco_dataset, write_mask_dataset

DEEP = 5_000  # past Python's recursion limit: json/yaml would raise RecursionError
MODERATE = 300  # parses, but deeper than any samlora file may nest


@dataclass
class Inputs:
    """What the rows start from (built once): a tiny model, an adapter, COCO and mask data."""

    model: Path
    adapter: Path
    coco: Path
    masks: Path
    image: Path


@pytest.fixture(scope="module")
def inputs(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    from samlora.config import LoraSettings
    from samlora.lora.adapters import adapter_metadata, save_adapter
    from samlora.lora.plan import apply_lora
    from samlora.models.loading import load_model

    root = tmp_path_factory.mktemp("bad-inputs")
    loaded = load_model(str(tiny_dirs["sam"]))
    settings = LoraSettings(rank=2, components=["vision_encoder"], target_modules=["all-linear"])
    model, _ = apply_lora(loaded.model, loaded.spec, settings)
    adapter = save_adapter(model, root / "adapter", adapter_metadata(loaded, settings, step=1))
    image = root / "photo.png"
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(image)
    return Inputs(
        tiny_dirs["sam"],
        adapter,
        write_coco_dataset(root / "coco", n_train=2, n_valid=0, seed=1),
        write_mask_dataset(root / "masks", n_train=2, n_valid=0, seed=1),
        image,
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def huge_png(path: Path, width: int = 12_000, height: int = 12_000) -> Path:
    """A PNG whose header says 144 megapixels (its pixel data is a stub: it is never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def coco_copy(
    i: Inputs, tmp: Path, change: Callable[[dict], None] | None = None, text: bytes | None = None
) -> Path:
    root = shutil.copytree(i.coco, tmp / "coco")
    path = root / "train" / "_annotations.coco.json"
    if change is not None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    if text is not None:
        path.write_bytes(text)
    return root


def adapter_copy(i: Inputs, tmp: Path, name: str | None = None, content: bytes | None = None) -> Path:
    folder = shutil.copytree(i.adapter, tmp / "adapter")
    if name is not None:
        if content is None:
            (folder / name).unlink()
        else:
            (folder / name).write_bytes(content)
    return folder


def model_copy(i: Inputs, tmp: Path, drop: str | None = None, files: dict[str, bytes] | None = None) -> Path:
    folder = shutil.copytree(i.model, tmp / "model")
    if drop:
        (folder / drop).unlink()
    for name, content in (files or {}).items():
        (folder / name).write_bytes(content)
    return folder


def config_file(tmp: Path, text: str | bytes) -> str:
    path = tmp / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def bomb(levels: int = 12) -> str:
    """A YAML billion-laughs: each alias list repeats the previous one 9 times."""
    lines = ["prompts:", "  synonyms:", "    a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for k in range(1, levels):
        lines.append(f"    a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def predict(i: Inputs, tmp: Path, *extra: str, source: Path | None = None) -> list[str]:
    return ["predict", str(source or i.image), "--output", str(tmp / "out"), *extra]


def train(i: Inputs, tmp: Path, *extra: str) -> list[str]:
    return ["train", "--model.name", str(i.model), "--output.dir", str(tmp / "run"), "--train.max_steps", "1",
            "--train.num_workers", "0", "--train.trackers", "[none]", *extra]  # fmt: skip


# name -> (make the input and the command line, expected exit status, words the message must hold)
ROWS: dict[str, tuple[Callable[[Inputs, Path], list[str]], int, str]] = {
    # COCO / JSON
    "coco nested past the recursion limit": (
        lambda i, t: ["data", "check", str(coco_copy(i, t, text=f'{{"images": {nested(DEEP)}}}'.encode()))], 1, "deeper than"),
    "coco nested 300 deep": (
        lambda i, t: ["data", "check", str(coco_copy(i, t, lambda d: d["annotations"][0].update(segmentation=json.loads(nested(MODERATE)))))], 1, "deeper than"),
    "coco not UTF-8": (
        lambda i, t: ["data", "check", str(coco_copy(i, t, text=b'{"images": ["\xff\xfe"]}'))], 1, "not UTF-8"),
    "coco truncated": (
        lambda i, t: ["data", "check", str(coco_copy(i, t, text=b'{"images": [{"id": 1, "file_na'))], 1, "not valid JSON"),
    "coco iscrowd yes": (
        lambda i, t: ["data", "check", str(coco_copy(i, t, lambda d: d["annotations"][0].update(iscrowd="yes")))], 1, "'iscrowd' must be 0"),
    "coco area -50": (
        lambda i, t: ["data", "check", str(coco_copy(i, t, lambda d: d["annotations"][0].update(area=-50)))], 1, "'area' must be a non-negative"),
    "coco iscrowd yes, train": (
        lambda i, t: train(i, t, "--data.root", str(coco_copy(i, t, lambda d: d["annotations"][0].update(iscrowd="yes")))), 2, "'iscrowd' must be 0"),
    "coco nested, train": (
        lambda i, t: train(i, t, "--data.root", str(coco_copy(i, t, text=nested(DEEP).encode()))), 2, "deeper than"),
    # images and masks
    "144-megapixel png": (
        lambda i, t: ["data", "check", str(replaced_image(i, t, huge_png))], 1, "megapixels"),
    "144-megapixel png, predict": (
        lambda i, t: predict(i, t, "--model", str(i.model), "--box", "1", "1", "9", "9", source=huge_png(t / "big.png")), 2, "data.max_pixels"),
    "image over --max-pixels, predict": (
        lambda i, t: predict(i, t, "--model", str(i.model), "--box", "1", "1", "9", "9", "--max-pixels", "100"), 2, "--max-pixels"),
    "image over data.max_pixels": (
        lambda i, t: ["data", "check", str(i.masks), "--data.max_pixels", "1000"], 1, "megapixels"),
    "garbage image": (
        lambda i, t: ["data", "check", str(replaced_image(i, t, lambda p: write(p, b"GIF89a junk")))], 1, "cannot read image"),
    # YAML configs
    "config nested past the recursion limit": (
        lambda i, t: ["config", "validate", "--config", config_file(t, "train:\n  trackers: " + nested(DEEP))], 2, "deeper than"),
    "config nested 300 deep": (
        lambda i, t: ["config", "validate", "--config", config_file(t, "train:\n  trackers: " + nested(MODERATE))], 2, "deeper than"),
    "config not UTF-8": (
        lambda i, t: ["config", "validate", "--config", config_file(t, b"train:\n  lr: 1e-4 # \xe9t\xe9\n")], 2, "not UTF-8"),
    "config alias bomb in prompts.synonyms": (
        lambda i, t: ["config", "validate", "--config", config_file(t, bomb())], 2, "aliases"),
    "config alias bomb in train.trackers": (
        lambda i, t: ["config", "validate", "--config", config_file(t, "x: &a [auto, auto, auto, auto, auto, auto, auto, auto]\n" + "".join(f"y{k}: &a{k} [" + ", ".join(["*" + ("a" if k == 0 else f"a{k - 1}")] * 8) + "]\n" for k in range(8)) + "train:\n  trackers: *a7\n")], 2, "aliases"),
    "alias bomb on the command line": (
        lambda i, t: ["config", "validate", "--prompts.synonyms", "{" + bomb().split("synonyms:\n")[1].replace("\n    ", ", ").strip().rstrip(",") + "}"], 2, "aliases"),
    "train.lr .inf": (
        lambda i, t: ["config", "validate", "--config", config_file(t, "train:\n  lr: .inf\n")], 2, "'train.lr' must be a finite number"),
    "train.lr .inf, train": (
        lambda i, t: train(i, t, "--data.root", str(i.masks), "--train.lr", ".inf"), 2, "'train.lr' must be a finite number"),
    "train.lr nan": (
        lambda i, t: ["config", "validate", "--train.lr", ".nan"], 2, "'train.lr'"),
    "train.max_steps 10**26": (
        lambda i, t: ["config", "validate", "--config", config_file(t, f"train:\n  max_steps: {10**26}\n")], 2, "'train.max_steps' must be at most"),
    "train.max_steps 1e26": (
        lambda i, t: ["config", "validate", "--config", config_file(t, "train:\n  max_steps: 1e26\n")], 2, "'train.max_steps' must be an integer"),
    "lora.rank 10**9": (
        lambda i, t: ["config", "validate", "--lora.rank", str(10**9)], 2, "'lora.rank' must be at most"),
    "train.seed negative": (
        lambda i, t: ["config", "validate", "--train.seed", "-1"], 2, "'train.seed' must be in"),
    "config is a list": (
        lambda i, t: ["config", "validate", "--config", config_file(t, "- a\n- b\n")], 2, "mapping of sections"),
    # adapters
    "adapter_config.json not UTF-8": (
        lambda i, t: ["adapters", "info", str(adapter_copy(i, t, "adapter_config.json", b'{"r": "\xff"}'))], 2, "not UTF-8"),
    "adapter_config.json nested": (
        lambda i, t: ["adapters", "info", str(adapter_copy(i, t, "adapter_config.json", nested(DEEP).encode()))], 2, "deeper than"),
    "adapter weights truncated": (
        lambda i, t: ["adapters", "info", str(truncated(adapter_copy(i, t)))], 2, "not a valid safetensors"),
    "adapter weights empty": (
        lambda i, t: ["adapters", "info", str(adapter_copy(i, t, "adapter_model.safetensors", b""))], 2, "not a valid safetensors"),
    "adapter weights garbage": (
        lambda i, t: ["adapters", "info", str(adapter_copy(i, t, "adapter_model.safetensors", b"\x00garbage" * 100))], 2, "not a valid safetensors"),
    "adapter weights truncated, predict": (
        lambda i, t: predict(i, t, "--adapter", str(truncated(adapter_copy(i, t))), "--box", "1", "1", "9", "9"), 2, "not a valid safetensors"),
    "plain PEFT adapter without --model": (
        lambda i, t: predict(i, t, "--adapter", str(adapter_copy(i, t, "samlora.json")), "--box", "1", "1", "9", "9"), 2, "does not record its base model"),
    "plain PEFT adapter merged without --model": (
        lambda i, t: ["adapters", "merge", str(adapter_copy(i, t, "samlora.json")), "--output", str(t / "merged")], 2, "does not record its base model"),
    "samlora.json holding []": (
        lambda i, t: ["adapters", "info", str(adapter_copy(i, t, "samlora.json", b"[]"))], 2, "must hold a JSON object"),
    "samlora.json holding [], predict": (
        lambda i, t: predict(i, t, "--adapter", str(adapter_copy(i, t, "samlora.json", b"[]")), "--box", "1", "1", "9", "9"), 2, "must hold a JSON object"),
    "samlora.json with a numeric base_model": (
        lambda i, t: ["adapters", "info", str(adapter_copy(i, t, "samlora.json", b'{"base_model": 7}'))], 2, "'base_model' must be str"),
    "samlora.json with bad class_names": (
        lambda i, t: ["adapters", "info", str(adapter_copy(i, t, "samlora.json", b'{"class_names": {"cat": 1}}'))], 2, "'class_names'"),
    "pickled adapter only": (
        lambda i, t: ["adapters", "info", str(pickled_only(adapter_copy(i, t, "adapter_model.bin", b"pickle")))], 2, "refuses to unpickle"),
    # model folders
    "model folder holding only a pickle": (
        lambda i, t: predict(i, t, "--model", str(model_copy(i, t, "model.safetensors", {"pytorch_model.bin": b"\x80\x04pickle"})), "--box", "1", "1", "9", "9"), 2, "pickled weights"),
    "model folder holding only a pickle, info": (
        lambda i, t: ["info", str(model_copy(i, t, "model.safetensors", {"pytorch_model.bin": b"\x80\x04pickle"}))], 2, "never unpickles"),
    "model weights truncated": (
        lambda i, t: ["info", str(model_copy(i, t, files={"model.safetensors": (i.model / "model.safetensors").read_bytes()[:500]}))], 2, "not a valid safetensors"),
    "model config.json not UTF-8": (
        lambda i, t: ["info", str(model_copy(i, t, files={"config.json": b'{"model_type": "\xff"}'}))], 2, "not UTF-8"),
    "model config.json is a list": (
        lambda i, t: ["info", str(model_copy(i, t, files={"config.json": b"[]"}))], 2, "must hold a JSON object"),
    # prompts files
    "prompts file nested": (
        lambda i, t: predict(i, t, "--model", str(i.model), "--prompts", str(write(t / "p.json", nested(DEEP).encode()))), 2, "deeper than"),
    "prompts file not UTF-8": (
        lambda i, t: predict(i, t, "--model", str(i.model), "--prompts", str(write(t / "p.json", b'{"\xff": 1}'))), 2, "not UTF-8"),
    "prompts file missing": (
        lambda i, t: predict(i, t, "--model", str(i.model), "--prompts", str(t / "none.json")), 2, "does not exist"),
}  # fmt: skip


def replaced_image(i: Inputs, tmp: Path, replace: Callable[[Path], Path]) -> Path:
    """A copy of the COCO data whose first training image is replaced; returns the data root."""
    root = coco_copy(i, tmp)
    replace(root / "train" / "img_000.png")
    return root


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def truncated(folder: Path) -> Path:
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])
    return folder


def pickled_only(folder: Path) -> Path:
    (folder / "adapter_model.safetensors").unlink()
    return folder


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash (folders as ``/``)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("row", list(ROWS))
def test_a_malformed_input_is_refused_cleanly(row: str, inputs: Inputs, tmp_path: Path, capsys) -> None:
    make, expected, words = ROWS[row]
    argv = make(inputs, tmp_path)
    before = tree(tmp_path)
    code = main(argv)  # an exception escaping here is the traceback the CLI must never show
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == expected, text[-3000:]
    assert words in text, text[-3000:]
    assert "Traceback" not in text
    after = tree(tmp_path)
    assert {k: after.get(k) for k in before} == before  # nothing already on disk changed or lost


def test_permission_denied_and_out_of_memory_are_messages(
    inputs: Inputs, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Environment faults while reading: an unreadable config, and memory running out decoding an image."""
    import errno

    from PIL import ImageFile

    path = Path(config_file(tmp_path, "train:\n  lr: 0.001\n"))
    real = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert main(["config", "validate", "--config", str(path)]) == 2
    monkeypatch.undo()

    def no_memory(self):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_memory)
    assert main(["data", "check", str(inputs.masks)]) == 1
    assert main(predict(inputs, tmp_path, "--model", str(inputs.model), "--box", "1", "1", "9", "9")) == 2
    monkeypatch.undo()

    def device_full(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    import torch

    import samlora.predict.run as run

    monkeypatch.setattr(run, "run_predict", device_full)
    assert main(predict(inputs, tmp_path, "--model", str(inputs.model), "--box", "1", "1", "9", "9")) == 2
    text = "".join(capsys.readouterr())
    assert "permission denied" in text and "not enough memory to decode image" in text
    assert "out of memory on the device (CUDA out of memory" in text
    assert "Traceback" not in text
