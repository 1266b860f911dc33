"""Training batches made on the device: masks, boxes and points agree with the warped label layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from samlora.config import config_from_dict
from samlora.data.synthetic import write_mask_dataset
from samlora.models.loading import load_model
from samlora.tasks.common import open_training_splits
from samlora.tasks.promptable.data import PromptableDataset
from samlora.tasks.promptable.frames import frame_batch


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_dataset(tmp_path_factory.mktemp("frames"), n_train=4, n_valid=0, seed=3)


@pytest.mark.parametrize(
    "augment",
    [
        {"enabled": False},
        {"hflip": 0.5, "rot90": 0.5, "scale_min": 0.6, "scale_max": 1.8, "crop": 0.8, "brightness": 0.3},
    ],
)
def test_masks_boxes_and_points_agree(tiny_dirs: dict[str, Path], data: Path, augment: dict) -> None:
    cfg = config_from_dict(
        {"model": {"name": str(tiny_dirs["sam"])}, "data": {"root": str(data), "cache": True, "val_fraction": 0.0},
         "augment": augment, "prompts": {"box_jitter": 0.0, "max_points": 3, "negative_points": 2}}
    )  # fmt: skip
    loaded = load_model(str(tiny_dirs["sam"]), device="cpu")
    splits = open_training_splits(cfg, loaded.preprocessing.frame)
    dataset = PromptableDataset(splits.train, cfg, train=True, images=splits.images)
    size = loaded.preprocessing.image_size
    for epoch in range(3):
        dataset.epoch = epoch
        items = [dataset[i] for i in range(len(dataset))]
        batch = frame_batch(items, loaded.preprocessing, cfg, torch.device("cpu"))
        masks = torch.cat(batch.masks)
        assert batch.pixels.shape == (4, 3, size, size) and masks.shape[1:] == (size, size)
        assert batch.valid is not None and batch.valid.shape == (len(masks),)
        for n in range(len(masks)):
            if not batch.valid[n]:
                assert not masks[n].any()
                continue
            rows, cols = masks[n].nonzero(as_tuple=True)
            exact = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            assert batch.exact_boxes[n].tolist() == [float(v) for v in exact]
            torch.testing.assert_close(batch.boxes[n], batch.exact_boxes[n])  # no jitter asked
            for (x, y), label in zip(batch.points[n], batch.labels[n]):
                if label == -10:
                    continue
                inside = bool(masks[n, int(y), int(x)])
                assert inside == (label == 1), (n, x, y, label)
            assert (batch.labels[n] == 1).sum() >= 1
    if not augment.get("enabled", True):  # without augmentation the frame is the model's own preprocessing
        sample = splits.images[0]
        pixels = loaded.preprocessing.images([torch.from_numpy(sample.image.copy()).permute(2, 0, 1)])
        torch.testing.assert_close(batch.pixels[:1], pixels, atol=1e-4, rtol=0)


def test_dilation_by_rows_then_columns_is_the_square_neighbourhood() -> None:
    from samlora.tasks.promptable.frames import dilate

    g = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 40, 33, generator=g) > 0.97
    masks[1] = False  # an empty mask stays empty
    for margin in (1, 2, 4, 9, 20, 50):  # 50: beyond the image
        square = torch.nn.functional.max_pool2d(masks[:, None].float(), 2 * margin + 1, 1, margin)[:, 0] > 0
        assert torch.equal(dilate(masks, margin), square)
    assert not dilate(masks, 5)[1].any()
