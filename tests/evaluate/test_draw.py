"""Drawing: the user's prompts apart from the prediction, labels legible on any colour, predict overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from samlora.cli import main
from samlora.evaluate.draw import NEGATIVE, POSITIVE, draw_prompts, overlay, palette, text_label


def test_prompts_are_drawn_apart_from_masks() -> None:
    image = np.full((60, 80, 3), 128, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[10:40, 10:50] = True
    drawn = draw_prompts(
        overlay(image, [mask]),
        boxes=[[5, 5, 60, 50]],
        points=[[[30, 25], [70, 55]]],
        point_labels=[[1, 0]],
    )
    colour = np.array(palette(1)[0])
    edge = drawn[5, 5:60]  # the box prompt's top edge: black and white dashes, never the mask colour
    assert {tuple(p) for p in edge} <= {(0, 0, 0), (255, 255, 255)}
    assert (edge == 255).all(axis=1).any() and (edge == 0).all(axis=1).any()
    assert not (drawn[5:51, 5] == colour).all(axis=1).any()
    assert np.abs(drawn[25, 35].astype(int) - POSITIVE).sum() < 60  # a green disc around click 1
    assert np.abs(drawn[55, 75].astype(int) - NEGATIVE).sum() < 60  # a red disc around the negative click
    assert (draw_prompts(image) == image).all()  # nothing given: nothing drawn
    padded = draw_prompts(image, points=[[10, 10]], point_labels=[-10])  # padding: no click
    assert (padded == image).all()


def test_labels_are_legible_on_any_colour() -> None:
    for colour in [(255, 200, 0), (255, 255, 255), (0, 0, 0), (230, 120, 20), (40, 90, 255)]:
        pil = Image.new("RGB", (120, 40), colour)
        text_label(ImageDraw.Draw(pil), (4, 4), "object 0.93", accent=palette(1)[0])
        plate = np.asarray(pil)[8:20, 10:60].astype(int)
        lum = plate @ np.array([0.2126, 0.7152, 0.0722])
        # white text on a dark plate whatever lies under it: strong contrast inside the label
        assert lum.min() < 40 and lum.max() > 200, colour


def test_predict_overlay_draws_the_users_box(tiny_dirs: dict[str, Path], tmp_path: Path, image) -> None:
    Image.fromarray(image).save(tmp_path / "p.png")
    out = tmp_path / "preds"
    argv = [
        "predict",
        str(tmp_path / "p.png"),
        "--model",
        str(tiny_dirs["sam"]),
        "--box",
        "20",
        "10",
        "50",
        "30",
    ]
    assert main([*argv, "--point", "30", "20", "--output", str(out), "--device", "cpu"]) == 0
    picture = np.asarray(Image.open(out / "overlays" / "p.png").convert("RGB"))
    edge = picture[30, 22:48]  # the bottom of the user's box, dashed white on black (its label sits on top)
    assert {tuple(p) for p in edge} <= {(0, 0, 0), (255, 255, 255)}, edge
    assert np.abs(picture[20, 35].astype(int) - POSITIVE).sum() < 60  # the disc of the user's click
