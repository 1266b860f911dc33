"""Device-side augmentation: a plan drawn on the CPU, applied to a batch in one resampling."""

from __future__ import annotations

import numpy as np
import torch

from samlora.data.frame import Frame
from samlora.data.transforms import Augment, AugmentPlan
from samlora.data.warp import warp_batch

H, W = 30, 40


def picture() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    labels = np.zeros((1, H, W), np.int16)
    labels[0, 5:15, 10:30] = 1
    labels[0, 20:25, 2:8] = 2
    return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(labels), image, labels


def plan_for(aug: Augment, labels: np.ndarray, seed: int, boxes: np.ndarray | None = None) -> AugmentPlan:
    def pixels_of(ks: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        return {k: np.nonzero(labels[0] == k + 1) for k in ks}

    return aug.plan((H, W), pixels_of, np.array([0, 1]), np.random.default_rng(seed), boxes)


def test_flips_rotations_and_crops_are_exact_and_batched() -> None:
    t, lab, image, labels = picture()
    for aug in (
        Augment(hflip=1.0),
        Augment(vflip=1.0),
        Augment(rot90=1.0),
        Augment(crop=1.0, crop_min_size=0.3),
    ):
        plans = [plan_for(aug, labels, seed) for seed in range(4)]
        frame = Frame(max(max(p.size) for p in plans))
        out = warp_batch([t] * 4, [lab] * 4, plans, frame, "cpu")
        for b, plan in enumerate(plans):
            expected, expected_labels = image, labels[0]
            for op in plan.ops:
                if op == "hflip":
                    expected, expected_labels = expected[:, ::-1], expected_labels[:, ::-1]
                elif op == "vflip":
                    expected, expected_labels = expected[::-1], expected_labels[::-1]
                elif op.startswith("rot90x"):
                    k = int(op[-1])
                    expected, expected_labels = np.rot90(expected, k), np.rot90(expected_labels, k)
                else:  # a crop: the plan's offset is its window's top-left
                    x0, y0 = int(plan.matrix[0, 2]), int(plan.matrix[1, 2])
                    h, w = plan.size
                    expected = expected[y0 : y0 + h, x0 : x0 + w]
                    expected_labels = expected_labels[y0 : y0 + h, x0 : x0 + w]
            h, w = expected.shape[:2]
            if max(h, w) != frame.size:  # a smaller crop is enlarged into the frame
                alone = warp_batch([t], [lab], [plan], Frame(max(h, w)), "cpu")
                assert alone.extent[0] == (h, w)
                np.testing.assert_array_equal(alone.labels[0, 0, :h, :w].numpy(), expected_labels)
                continue
            assert out.extent[b] == (h, w)
            got = out.pixels[b, :, :h, :w].round().permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(out.labels[b, 0, :h, :w].numpy(), expected_labels)
            assert not out.region[b, h:].any() and not out.region[b, :, w:].any()
            assert out.pixels[b, :, h:].abs().sum() == 0 and out.labels[b, :, h:].sum() == 0


def test_zoom_keeps_an_object_and_fills_the_frame() -> None:
    t, lab, _, labels = picture()
    for seed in range(10):
        plan = plan_for(Augment(scale=(1.5, 3.0), crop=1.0, crop_min_size=0.2), labels, seed)
        out = warp_batch([t], [lab], [plan], Frame(64), "cpu")
        assert max(out.extent[0]) == 64
        assert {1, 2} & set(out.labels[0].unique().tolist())  # the window kept an object's pixel
    plan = plan_for(Augment(scale=(0.4, 0.5)), labels, 0)  # zoom out: a black canvas, no object on it
    out = warp_batch([t], [lab], [plan], Frame(40), "cpu")
    canvas = out.pixels[0].amax(dim=0) == 0
    assert canvas.float().mean() > 0.5 and not (out.labels[0, 0][canvas] > 0).any()
    assert set(out.labels[0].unique().tolist()) == {0, 1, 2}


def test_colour_steps_follow_each_images_own_order() -> None:
    t, lab, _, labels = picture()
    plans = [AugmentPlan.identity((H, W)) for _ in range(3)]
    plans[0].colour = [("brightness", 0.5)]
    plans[1].colour = [("saturation", 0.0), ("brightness", 2.0)]
    plans[2].colour = [("hue", 0.5), ("contrast", 1.0)]  # a contrast of 1 changes nothing
    out = warp_batch([t] * 3, [lab] * 3, plans, Frame(40), "cpu")
    base = t.float()
    torch.testing.assert_close(out.pixels[0, :, :H], base * 0.5, atol=1e-3, rtol=0)
    gray = (base * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    torch.testing.assert_close(
        out.pixels[1, :, :H], (gray * 2.0).clamp(0, 255).expand(3, -1, -1), atol=1e-2, rtol=0
    )
    shifted = out.pixels[2, :, :H]  # half a turn: each channel's distance to the pixel's extremes swaps
    torch.testing.assert_close(
        shifted.amax(0) + shifted.amin(0), base.amax(0) + base.amin(0), atol=1e-2, rtol=0
    )
    assert (out.labels[:, 0, :H] == lab[0]).all()  # colour never moves objects


def test_plans_from_object_boxes_equal_plans_from_every_pixel() -> None:
    """Known boxes let the plan skip reading the pixels of objects that stay in view: the same
    windows, drawn with the same random numbers."""
    from samlora.data.frame import object_boxes

    _, _, _, labels = picture()
    boxes = object_boxes(labels, np.array([0, 0]))
    for aug in (
        Augment(scale=(0.5, 2.0), crop=0.7),
        Augment(hflip=0.5, rot90=0.5, scale=(1.5, 3.0), crop=1.0),
    ):
        for seed in range(40):
            a = plan_for(aug, labels, seed)
            b = plan_for(aug, labels, seed, boxes)
            assert a.ops == b.ops and np.allclose(a.matrix, b.matrix, atol=1e-9), (seed, a.ops)


def test_plans_are_deterministic_per_generator() -> None:
    _, _, _, labels = picture()
    aug = Augment(hflip=0.5, rot90=0.5, scale=(0.5, 2.0), crop=0.7, brightness=0.3, hue=0.1)
    a, b = plan_for(aug, labels, 5), plan_for(aug, labels, 5)
    assert a.ops == b.ops and np.array_equal(a.matrix, b.matrix) and a.colour == b.colour
    assert plan_for(Augment(), labels, 0).ops == []
