"""Preprocessing geometry: every image, however thin, gets at least one pixel in the input frame."""

from __future__ import annotations

import torch

from samlora.models.preprocess import Preprocessing


def test_thin_images_keep_a_pixel_in_the_input_frame() -> None:
    pre = Preprocessing(
        image_size=256, resize="longest_side", mean=(0.5,) * 3, std=(0.5,) * 3, low_res_size=64
    )
    geom = pre.geometry(2, 3000)
    assert (geom.resized_h, geom.resized_w) == (1, 256)
    pixels = pre.images([torch.full((3, 2, 3000), 100, dtype=torch.uint8)], torch.device("cpu"))
    assert pixels.shape == (1, 3, 256, 256)
    assert (pre.geometry(3000, 1).resized_h, pre.geometry(3000, 1).resized_w) == (256, 1)
