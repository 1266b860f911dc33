"""Concept-model configuration: presets as the seed tool's, components concept training cannot
train, and the loss keys that reach the set loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from samlora.config import config_from_dict, load_config
from samlora.errors import ConfigError
from samlora.lora.plan import plan_lora
from samlora.models.loading import load_model
from samlora.tasks.concept.forward import set_loss_from
from samlora.tasks.concept.task import ConceptTask

REPO = Path(__file__).resolve().parents[3]


def test_presets_match_the_seed_tool(tiny_dirs: dict[str, Path]) -> None:
    light = load_config(REPO / "configs" / "sam3_light.yaml")
    full = load_config(REPO / "configs" / "sam3_full.yaml")
    assert light.lora.rank == 16 and full.lora.rank == 32
    assert not {"vision_encoder", "geometry_encoder"} & set(light.lora.components)
    assert {"vision_encoder", "text_encoder", "detr_encoder", "detr_decoder"} <= set(full.lora.components)
    assert "geometry_encoder" not in full.lora.components
    loaded = load_model(str(tiny_dirs["sam3"]))
    for cfg in (light, full):
        assert plan_lora(loaded.model, loaded.spec, cfg.lora).targets
        ConceptTask(loaded, cfg)  # passes the concept component check


@pytest.mark.parametrize(
    "components", [["geometry_encoder"], ["vision_encoder", "geometry_encoder"], ["all"]]
)
def test_geometry_encoder_lora_is_a_config_error(tiny_dirs: dict[str, Path], components: list[str]) -> None:
    cfg = config_from_dict({"model": {"name": str(tiny_dirs["sam3"])}, "lora": {"components": components}})
    loaded = load_model(str(tiny_dirs["sam3"]))
    with pytest.raises(ConfigError, match="geometry encoder never runs.*Fix: .*text_encoder"):
        ConceptTask(loaded, cfg)


def outputs_and_targets() -> tuple[dict, list[dict]]:
    gen = torch.Generator().manual_seed(0)
    outputs = {
        "pred_logits": torch.randn(2, 5, generator=gen),
        "presence_logits": torch.randn(2, 1, generator=gen),
        "pred_boxes": torch.tensor([[0.1, 0.1, 0.5, 0.5]]).repeat(2, 5, 1),
        "pred_masks": torch.randn(2, 5, 8, 8, generator=gen),
    }
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    targets = [
        {"boxes": torch.tensor([[0.2, 0.2, 0.6, 0.6]]), "masks": masks},
        {"boxes": torch.zeros(0, 4), "masks": torch.zeros(0, 8, 8, dtype=torch.bool)},
    ]
    return outputs, targets


def loss_with(**loss) -> dict[str, torch.Tensor]:
    loss_fn = set_loss_from(config_from_dict({"loss": loss}))
    return loss_fn(*outputs_and_targets())[1]


def test_focal_keys_reach_the_set_loss() -> None:
    base = loss_with()
    assert loss_with(focal_gamma=0.0)["loss_mask"] > base["loss_mask"]  # gamma 0: no down-weighting
    assert loss_with(focal_alpha=0.9)["loss_mask"] != pytest.approx(float(base["loss_mask"]))
    focal = loss_with(set_class_loss="focal")
    assert focal["loss_class"] != pytest.approx(
        float(loss_with(set_class_loss="focal", focal_gamma=0.0)["loss_class"])
    )


def test_class_weight_defaults_follow_the_class_loss() -> None:
    assert set_loss_from(config_from_dict({})).weights["loss_class"] == 20.0
    assert set_loss_from(config_from_dict({"loss": {"set_class_loss": "focal"}})).weights["loss_class"] == 2.0
    explicit = config_from_dict({"loss": {"set_class_loss": "focal", "set_class": 7.0}})
    assert set_loss_from(explicit).weights["loss_class"] == 7.0
    with pytest.raises(ConfigError, match="set_class"):
        config_from_dict({"loss": {"set_class": -1.0}})


def test_presence_loss_of_negatives_is_logged() -> None:
    terms = loss_with()
    outputs, targets = outputs_and_targets()
    expected = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(
        outputs["presence_logits"][1, 0], torch.tensor(0.0)
    )
    assert float(terms["presence_loss_negatives"]) == pytest.approx(float(expected), rel=1e-5)


def test_best_metric_auto_is_map_for_concept_models(tiny_dirs: dict[str, Path]) -> None:
    task = ConceptTask(load_model(str(tiny_dirs["sam3"])), config_from_dict({}))
    assert task.best_metric("auto") == "mAP" and task.best_metric("val_loss") == "loss"
