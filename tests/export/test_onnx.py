"""``samlora export onnx``: every family's graphs, export.json, card, verification, and the refusals."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from samlora.cli import main
from samlora.export.graphs import PAD_ALWAYS, PROMPTABLE
from samlora.export.onnx import check_output, export_onnx
from samlora.export.verify import Tolerance
from samlora.lora.adapters import export_merged
from samlora.models.loading import load_model


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("family", PROMPTABLE)
def test_promptable_family_exports_and_verifies(family: str, exports: dict[str, Path]) -> None:
    folder = exports[family]
    files = {p.name for p in folder.iterdir()}
    assert {"image_encoder.onnx", "prompt_decoder.onnx", "prompt_decoder_multimask.onnx"} <= files
    assert {"export.json", "README.md"} <= files
    desc = json.loads((folder / "export.json").read_text())
    assert desc["family"] == family and desc["source"]["kind"] == "adapter" and desc["source"]["adapter"]
    graphs = desc["graphs"]["fp32"]
    encoder, decoder = graphs["image_encoder"], graphs["prompt_decoder"]
    assert encoder["inputs"][0]["name"] == "pixel_values" and encoder["inputs"][0]["shape"][0] == "batch"
    extras = [o["name"] for o in encoder["outputs"][1:]]
    assert len(extras) == (2 if family in PAD_ALWAYS else 1 if family == "sam_hq" else 0)
    inputs = {i["name"]: i for i in decoder["inputs"]}
    assert list(inputs)[: 1 + len(extras)] == ["image_embeddings", *extras]
    assert inputs["point_coords"]["shape"][:2] == ["num_prompts", "num_tokens"]
    assert inputs["point_labels"]["dtype"] == "int64" and inputs["has_mask_input"]["shape"] == ["num_prompts"]
    outputs = [o["name"] for o in decoder["outputs"]]
    assert outputs[:2] == ["masks", "iou_scores"]
    assert graphs["prompt_decoder_multimask"]["multimask"] is True
    pre = desc["preprocessing"]
    assert pre["image_size"] == load_model(f"tiny-{family.replace('_', '-')}").preprocessing.image_size
    assert desc["prompts"]["padding_point"] == (
        "always" if family in PAD_ALWAYS else "only when there is no box"
    )
    check = desc["verification"]["fp32"]
    assert check["passed"] and check["mask_agreement"] >= 0.999 and check["logits_max_rel_diff"] <= 1e-3
    assert len(check["cases"]) == 6 and desc["not_exported"] == []
    card = (folder / "README.md").read_text()
    assert (
        card.startswith("---\nlibrary_name: onnx")
        and "| fp32 | prompt_decoder |" in card
        and "passed" in card
    )
    assert "| rank / alpha / dropout | 2 /" in card and "samlora predict photo.jpg --onnx" in card


def test_cli_prints_figures_and_refuses_existing_output(
    exports: dict[str, Path], tiny_adapters: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    printed = (exports["sam"].parent / "sam.txt").read_text()
    assert "fp32: image_encoder.onnx, prompt_decoder.onnx, prompt_decoder_multimask.onnx" in printed
    assert "verified fp32" in printed and "passed" in printed
    agreeing = re.search(r"mask pixels agreeing (\d+\.\d+) %", printed)
    assert agreeing and float(agreeing.group(1)) >= 99.9  # exact but for logits near 0 of a random model
    folder = exports["sam"]
    code, _, err = run(["export", "onnx", str(tiny_adapters["sam"]), "--output", str(folder)], capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    check_output(folder, overwrite=True)  # an earlier export may be replaced


def test_overwrite_never_replaces_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="not a samlora ONNX export"):
        check_output(tmp_path, overwrite=True)
    check_output(tmp_path / "new", overwrite=False)  # a new folder is fine


def test_sam3_exports_its_vision_encoder_and_says_what_is_not(
    tiny_dirs: dict[str, Path], tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sam3"
    code, printed, _ = run(["export", "onnx", str(tiny_dirs["sam3"]), "--output", str(out)], capsys)
    assert code == 0 and "not exported (sam3): text encoder" in printed
    desc = json.loads((out / "export.json").read_text())
    assert list(desc["graphs"]["fp32"]) == ["vision_encoder"] and desc["source"]["kind"] == "base"
    assert "mask decoder" in desc["not_exported"] and desc["verification"]["fp32"]["passed"]
    names = [o["name"] for o in desc["graphs"]["fp32"]["vision_encoder"]["outputs"]]
    assert names[0] == "last_hidden_state" and "fpn_hidden_states_0" in names
    assert "## Not exported" in (out / "README.md").read_text()
    code, _, err = run(["predict", str(photos), "--onnx", str(out), "--box", "1", "1", "9", "9"], capsys)
    assert code == 2 and "without a prompt decoder" in err and "cannot predict masks" in err


def test_merged_folder_and_base_model_export(
    tiny_adapters: dict[str, Path], tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    merged = export_merged(tiny_adapters["sam_hq"], tmp_path / "merged")
    desc = export_onnx(str(merged), tmp_path / "from-merged")
    assert desc["source"]["kind"] == "merged" and desc["source"]["adapter"] == str(
        tiny_adapters["sam_hq"].resolve()
    )
    assert desc["verification"]["fp32"]["passed"]
    desc = export_onnx(str(tiny_dirs["sam2"]), tmp_path / "from-base", verify=False)
    assert desc["source"]["kind"] == "base" and desc["verification"] == {}
    assert "Not verified" in (tmp_path / "from-base" / "README.md").read_text()


def test_adapter_for_another_base_is_refused(
    tiny_adapters: dict[str, Path],
    tiny_dirs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        "export",
        "onnx",
        str(tiny_adapters["sam"]),
        "--model",
        str(tiny_dirs["sam_hq"]),
        "--output",
        str(tmp_path / "x"),
    ]
    code, _, err = run(args, capsys)
    assert code == 2 and "family 'sam'" in err and "sam_hq" in err and not (tmp_path / "x").exists()
    code, _, err = run(
        ["export", "onnx", str(tiny_dirs["sam"]), "--model", "x", "--output", str(tmp_path / "y")], capsys
    )
    assert code == 2 and "not an adapter or run folder" in err


def test_failed_verification_writes_nothing(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(Exception, match="verification of the fp32 graphs failed: .*--no-verify"):
        export_onnx(
            str(tiny_dirs["sam"]), tmp_path / "strict", tolerance=Tolerance(logits=0.0, agreement=1.0)
        )
    assert not (tmp_path / "strict").exists() and not list(tmp_path.glob(".strict*"))


def test_fp16_graphs_have_their_own_tolerance(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    # a random tiny model's logits are ~1e-4, so fp16 flips near-zero pixels: loosen its agreement only
    desc = export_onnx(
        str(tiny_dirs["sam"]), tmp_path / "half", fp16=True, fp16_tolerance=Tolerance(5e-2, 0.9)
    )
    assert (
        set(desc["graphs"]) == {"fp32", "fp16"} and (tmp_path / "half" / "image_encoder_fp16.onnx").is_file()
    )
    assert desc["verification"]["fp16"]["tolerance"] == {"logits": 5e-2, "agreement": 0.9}
    assert (
        desc["verification"]["fp16"]["passed"]
        and desc["verification"]["fp32"]["tolerance"]["agreement"] == 0.999
    )
    assert {i["dtype"] for i in desc["graphs"]["fp16"]["image_encoder"]["inputs"]} == {"float32"}


@pytest.mark.skipif(
    not os.environ.get("SAMLORA_SLOW_TESTS"),
    reason="the dynamo exporter takes ~40 s; SAMLORA_SLOW_TESTS=1 runs it",
)
def test_dynamo_exporter(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    desc = export_onnx(str(tiny_dirs["sam3_tracker"]), tmp_path / "dynamo", exporter="dynamo")
    assert desc["exporter"] == "dynamo" and desc["verification"]["fp32"]["passed"]


def test_missing_extra_names_the_install(
    tiny_dirs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    code, _, err = run(["export", "onnx", str(tiny_dirs["sam"]), "--output", str(tmp_path / "x")], capsys)
    assert code == 2 and "pip install 'samlora[export]'" in err and "onnxruntime" in err
