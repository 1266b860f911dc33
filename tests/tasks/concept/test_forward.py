"""SAM 3 training pairs made on the device from cached frames: the same targets as decoded samples
without augmentation; with augmentation, a resumed run repeats the uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from samlora.models.loading import load_model
from samlora.tasks.common import open_training_splits
from samlora.tasks.concept.data import ConceptDataset, ConceptFrameItem, as_sample
from samlora.tasks.concept.forward import frame_pairs, pair_batch
from samlora.training.trainer import train

from ...training.test_pipeline import killed_after_first_save_then_resumed
from ...training.test_trainer import train_losses
from .test_task import coco, concept_cfg  # noqa: F401 (the module's data fixture)

AUGMENT = {"hflip": 0.5, "rot90": 0.3, "scale_min": 0.7, "scale_max": 1.4, "crop": 0.5, "brightness": 0.2}


def test_frame_pairs_without_augmentation_equal_the_decoded_pairs(tiny_dirs, coco) -> None:  # noqa: F811
    cfg = concept_cfg(tiny_dirs["sam3"], coco, Path("unused"))
    cfg.augment.enabled = False
    loaded = load_model(str(tiny_dirs["sam3"]))
    pre = loaded.preprocessing
    splits = open_training_splits(cfg, pre.frame)
    dataset = ConceptDataset(splits.train, cfg, train=True, images=splits.images)
    items = [dataset[i] for i in range(len(dataset))]
    assert all(isinstance(i, ConceptFrameItem) for i in items)
    device = torch.device("cpu")
    ours = frame_pairs(items, pre, device)
    samples = []
    for index, item in enumerate(items):  # the same cached frames and prompts, as decoded samples
        sample = as_sample(splits.images[index])
        samples.append(
            type("S", (), {
                "image": torch.from_numpy(sample.image.copy()).permute(2, 0, 1), "masks": torch.from_numpy(sample.masks),
                "category_ids": torch.as_tensor(sample.category_ids), "prompts": item.prompts,
            })()
        )  # fmt: skip
    theirs = pair_batch(samples, pre, device)
    assert ours.texts == theirs.texts and ours.category_ids == theirs.category_ids
    assert torch.equal(ours.image_index, theirs.image_index) and torch.equal(
        ours.text_index, theirs.text_index
    )
    assert any(len(t["boxes"]) for t in ours.targets) and ours.ignore == theirs.ignore
    pixel = 1.0 / pre.image_size  # the cache holds the 56-px images unscaled: the frame resamples them
    for a, b in zip(
        ours.targets, theirs.targets
    ):  # nearest (labels) vs area-averaged (masks) differ at edges
        torch.testing.assert_close(a["boxes"], b["boxes"], rtol=0, atol=pixel + 1e-6)
        inter, union = (a["masks"] & b["masks"]).sum(), (a["masks"] | b["masks"]).sum()
        assert union == 0 or inter / union > 0.9
    torch.testing.assert_close(ours.pixels, theirs.pixels, rtol=0, atol=1e-4)


def test_a_cropped_out_category_is_a_negative_pair(tiny_dirs, coco) -> None:  # noqa: F811
    cfg = concept_cfg(tiny_dirs["sam3"], coco, Path("unused"))
    pre = load_model(str(tiny_dirs["sam3"])).preprocessing
    splits = open_training_splits(cfg, pre.frame)
    item = next(
        i for i in ConceptDataset(splits.train, cfg, train=True, images=splits.images) if len(i.layer)
    )
    item.labels = torch.zeros_like(item.labels)  # as if a crop had left none of its objects
    batch = frame_pairs([item], pre, torch.device("cpu"))
    positives = [n for n, p in enumerate(item.prompts) if p.positive]
    assert positives and not any(batch.ignore)
    assert all(len(batch.targets[n]["boxes"]) == 0 for n in positives)


def test_resume_repeats_the_augmented_concept_run(tiny_dirs, coco, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    def cfg(out: Path):
        c = concept_cfg(tiny_dirs["sam3"], coco, out, max_steps=4, eval_every=2)
        for key, value in AUGMENT.items():
            setattr(c.augment, key, value)
        c.data.cache = True
        return c

    full = train(cfg(tmp_path / "full"))
    killed_after_first_save_then_resumed(cfg(tmp_path / "cut"), monkeypatch)
    assert train_losses(tmp_path / "cut") == pytest.approx(train_losses(full.run_dir), rel=1e-5, abs=1e-6)
