"""LoRA placement per component and module name, errors, initialisation and the parameter report."""

from __future__ import annotations

import re
from pathlib import Path

import peft
import pytest
import torch

from samlora.config import LoraSettings
from samlora.errors import LoraTargetError
from samlora.lora.counts import format_report, parameter_report
from samlora.lora.plan import apply_lora, plan_lora
from samlora.models.families import FAMILIES as SPECS
from samlora.models.loading import load_model
from samlora.models.promptable import decode, encode

FAMILIES = list(SPECS)
PROMPTABLE = [name for name, spec in SPECS.items() if spec.task == "promptable"]


def lora_modules(model: torch.nn.Module) -> set[str]:
    return {
        n.removeprefix("base_model.model.")
        for n, m in model.named_modules()
        if hasattr(m, "lora_A") and len(m.lora_A)
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_components_are_respected(tiny_dirs: dict[str, Path], family: str) -> None:
    loaded = load_model(str(tiny_dirs[family]))
    for component, tops in loaded.spec.components.items():
        settings = LoraSettings(components=[component], target_modules=["all-linear"])
        has_linear = any(
            isinstance(m, torch.nn.Linear) for n, m in loaded.model.named_modules() if n.split(".")[0] in tops
        )
        if not has_linear:  # e.g. SAM's prompt encoder: only embeddings and convolutions
            with pytest.raises(LoraTargetError, match="train_fully"):
                plan_lora(loaded.model, loaded.spec, settings)
            continue
        plan = plan_lora(loaded.model, loaded.spec, settings)
        assert plan.targets, component
        assert all(t.split(".")[0] in tops for t in plan.targets)


@pytest.mark.parametrize("family", FAMILIES)
def test_q_proj_means_the_right_layers(tiny_dirs: dict[str, Path], family: str) -> None:
    loaded = load_model(str(tiny_dirs[family]))
    peft_model, plan = apply_lora(
        loaded.model, loaded.spec, LoraSettings(components=["vision_encoder"], target_modules=["q_proj"])
    )
    wrapped = lora_modules(peft_model)
    assert wrapped == set(plan.targets) and wrapped
    leaf = "qkv" if loaded.spec.fused_qkv else "q_proj"
    assert all(name.startswith("vision_encoder.") and name.endswith(leaf) for name in wrapped)
    assert bool(plan.notes) == loaded.spec.fused_qkv


def test_sam3_regex_is_anchored_to_the_component(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam3"]))
    peft_model, plan = apply_lora(
        loaded.model,
        loaded.spec,
        LoraSettings(components=["vision_encoder"], target_modules=["q_proj", "v_proj"]),
    )
    wrapped = lora_modules(peft_model)
    assert wrapped and all(n.startswith("vision_encoder.") for n in wrapped)
    text_q = [
        n for n, _ in loaded.model.named_modules() if n.startswith("text_encoder") and n.endswith("q_proj")
    ]
    assert text_q and not any(re.fullmatch(plan.target_regex, n) for n in text_q)


def test_sam3_each_component(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam3"]))
    names = [
        "vision_encoder",
        "text_encoder",
        "geometry_encoder",
        "detr_encoder",
        "detr_decoder",
        "mask_decoder",
    ]
    assert list(loaded.spec.components) == names
    for component in names:
        plan = plan_lora(
            loaded.model, loaded.spec, LoraSettings(components=[component], target_modules=["all-linear"])
        )
        assert {t.split(".")[0] for t in plan.targets} <= set(loaded.spec.components[component])


def test_module_name_target(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    plan = plan_lora(
        loaded.model,
        loaded.spec,
        LoraSettings(components=["mask_decoder"], target_modules=["iou_prediction_head.proj_in"]),
    )
    assert plan.targets == ["mask_decoder.iou_prediction_head.proj_in"]


@pytest.mark.parametrize("family", FAMILIES)
def test_module_names_as_info_lists_them_are_targets(tiny_dirs: dict[str, Path], family: str) -> None:
    """``layers.N.<...>`` (N = any layer index), as ``samlora info`` shows names, targets every layer."""
    from samlora.lora.plan import linear_layers

    loaded = load_model(str(tiny_dirs[family]))
    component = "vision_encoder"
    names = [n for n, (comp, _) in linear_layers(loaded.model, loaded.spec).items() if comp == component]
    indexed = sorted(n for n in names if re.search(r"\.\d+\.", n))
    shown = re.sub(r"\.\d+\.", ".N.", indexed[0].split(".", 1)[1])  # as info prints it
    expected = sorted(
        n for n in names if re.fullmatch(re.escape(shown).replace("N", r"\d+"), n.split(".", 1)[1])
    )
    plan = plan_lora(loaded.model, loaded.spec, LoraSettings(components=[component], target_modules=[shown]))
    assert plan.targets == expected and len(expected) >= 2, (shown, plan.targets)
    model, _ = apply_lora(
        loaded.model, loaded.spec, LoraSettings(components=[component], target_modules=[shown])
    )
    assert lora_modules(model) == set(expected)


def test_target_matching_nothing_lists_what_exists(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    with pytest.raises(LoraTargetError) as err:
        plan_lora(
            loaded.model, loaded.spec, LoraSettings(components=["vision_encoder"], target_modules=["query"])
        )
    text = str(err.value)
    assert "'query'" in text and "qkv" in text and "all-linear" in text and "layers.N.mlp.lin1" in text


def test_unknown_component_names_family_components(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    with pytest.raises(LoraTargetError) as err:
        plan_lora(loaded.model, loaded.spec, LoraSettings(components=["text_encoder"]))
    assert "text_encoder" in str(err.value) and "vision_encoder, prompt_encoder, mask_decoder" in str(
        err.value
    )


def test_all_components(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam2"]))
    plan = plan_lora(
        loaded.model,
        loaded.spec,
        LoraSettings(components=["all"], target_modules=["all-linear"], train_fully=["prompt_encoder"]),
    )
    assert {t.split(".")[0] for t in plan.targets} == {"vision_encoder", "mask_decoder"}


def test_sam3_outputs_identical_at_init(tiny_dirs: dict[str, Path]) -> None:
    """B = 0 at init on every SAM 3 component LoRA reaches in concept training."""
    from samlora.models.concept import decode_pairs, encode_images, encode_texts

    loaded = load_model(str(tiny_dirs["sam3"]))
    pixels = loaded.preprocessing.images([torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)])

    def outputs(model: torch.nn.Module) -> list[torch.Tensor]:
        with torch.no_grad():
            vision = encode_images(model, pixels)
            text, mask = encode_texts(model, loaded, ["square", "disc"], torch.device("cpu"))
            out = decode_pairs(model, vision, torch.zeros(2, dtype=torch.long), text, mask, torch.arange(2))
        return [out.logits, out.presence, out.boxes, out.masks]

    before = outputs(loaded.model)
    components = ["vision_encoder", "text_encoder", "detr_encoder", "detr_decoder", "mask_decoder"]
    model, plan = apply_lora(
        loaded.model, loaded.spec, LoraSettings(components=components, target_modules=["all-linear"])
    )
    assert {t.split(".")[0] for t in plan.targets} >= {"vision_encoder", "detr_decoder", "mask_decoder"}
    for a, b in zip(before, outputs(model)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("family", PROMPTABLE)
def test_outputs_identical_at_init(tiny_dirs: dict[str, Path], family: str) -> None:
    """B = 0 at init: the adapted model equals the base model before training."""
    loaded = load_model(str(tiny_dirs[family]))
    pixels = loaded.preprocessing.images([torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)])
    index, boxes = torch.tensor([0]), torch.tensor([[2.0, 3.0, 30.0, 25.0]])
    with torch.no_grad():
        before = decode(
            loaded.model, loaded.spec, encode(loaded.model, loaded.spec, pixels), index, boxes=boxes
        ).logits
    settings = LoraSettings(components=["vision_encoder", "mask_decoder"], target_modules=["all-linear"])
    peft_model, _ = apply_lora(loaded.model, loaded.spec, settings)
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    lora_a = [p for n, p in peft_model.named_parameters() if "lora_A" in n]
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)
    assert all(torch.count_nonzero(p) > 0 for p in lora_a)
    with torch.no_grad():
        after = decode(
            peft_model, loaded.spec, encode(peft_model, loaded.spec, pixels), index, boxes=boxes
        ).logits
    assert torch.equal(before, after)


@pytest.mark.parametrize(("variant", "scale"), [("lora", 16 / 4), ("rslora", 16 / 2)])
def test_scaling(tiny_dirs: dict[str, Path], variant: str, scale: float) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    peft_model, _ = apply_lora(loaded.model, loaded.spec, LoraSettings(rank=4, alpha=16, variant=variant))
    layer = next(m for m in peft_model.modules() if isinstance(m, peft.tuners.lora.LoraLayer))
    assert layer.scaling["default"] == pytest.approx(scale)


def test_dora_adds_magnitude(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    peft_model, _ = apply_lora(loaded.model, loaded.spec, LoraSettings(variant="dora"))
    assert any("lora_magnitude_vector" in n for n, _ in peft_model.named_parameters())


def test_only_adapter_parameters_train(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    settings = LoraSettings(
        components=["vision_encoder"], target_modules=["all-linear"], train_fully=["mask_decoder"]
    )
    peft_model, _ = apply_lora(loaded.model, loaded.spec, settings)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("mask_decoder.modules_to_save" in n for n in trainable)


def test_parameter_report(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    base_total = sum(p.numel() for p in loaded.model.parameters())
    settings = LoraSettings(
        rank=2, components=["vision_encoder"], target_modules=["all-linear"], train_fully=["mask_decoder"]
    )
    peft_model, plan = apply_lora(loaded.model, loaded.spec, settings)
    counts = parameter_report(peft_model, loaded.spec)
    expected_lora = sum(
        2 * (m.in_features + m.out_features)
        for n, m in loaded.model.named_modules()
        if n in set(plan.targets)
    )
    assert counts["vision_encoder"].lora == expected_lora
    decoder_params = sum(p.numel() for p in loaded.model.mask_decoder.modules_to_save["default"].parameters())
    assert counts["mask_decoder"].full == decoder_params and counts["mask_decoder"].frozen == 0
    assert sum(c.base for c in counts.values()) == base_total
    text = format_report(counts)
    assert "vision_encoder" in text and "total" in text and "%" in text


@pytest.mark.parametrize(
    ("preset", "family"),
    [
        ("minimal", "sam"),
        ("balanced", "sam2"),
        ("maximum", "sam3"),
        ("medical", "sam_hq"),
        ("sam3_light", "sam3"),
        ("sam3_full", "sam3"),
    ],
)
def test_presets_resolve_on_their_families(tiny_dirs: dict[str, Path], preset: str, family: str) -> None:
    from samlora.config import load_config

    settings = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{preset}.yaml").lora
    loaded = load_model(str(tiny_dirs[family]))
    plan = plan_lora(loaded.model, loaded.spec, settings)
    assert plan.targets


def test_wrapping_prints_no_peft_deprecation_noise(tiny_dirs: dict[str, Path]) -> None:
    import warnings

    loaded = load_model(str(tiny_dirs["sam"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_lora(loaded.model, loaded.spec, LoraSettings(components=["vision_encoder"]))
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
