"""The HTTP API against a live server: models, predictions (multipart and base64), compare, cache, errors."""

from __future__ import annotations

import io
import logging

import httpx
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from samlora.predict.predictor import Predictor

from .conftest import TOKEN, as_base64, expected_rles, png_bytes, predict, scene


@pytest.fixture()
def client(server: str):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def test_health_and_models(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["cache"]["capacity"] == 4
    models = client.get("/models").json()
    assert models["model"]["family"] == "sam" and models["model"]["task"] == "promptable"
    assert models["model"]["prompt_types"] == ["box", "points"]
    assert [a["name"] for a in models["adapters"]] == ["a1", "a2"] and models["default_adapter"] == "a1"
    assert models["adapters"][0]["class_names"] == {"1": "square"}
    assert models["adapters"][0]["metadata"]["family"] == "sam"


def test_box_prompts_give_the_predictor_masks_at_original_size(
    client: httpx.Client, sequential: Predictor
) -> None:
    pixels, _ = scene(1)
    prompts = {"boxes": [[10, 12, 70, 60], [60, 30, 120, 90]]}
    first = predict(client, pixels, prompts=prompts, adapter="a2")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["image"]["width"] == 128 and body["image"]["height"] == 96
    (result,) = body["results"]
    assert result["adapter"] == "a2" and result["cached"] is False
    rles = [inst["segmentation"] for inst in result["instances"]]
    assert rles == expected_rles(sequential, pixels, "a2", prompts)
    masks = mask_utils.decode(rles)
    assert masks.shape == (96, 128, len(rles))
    for inst, k in zip(result["instances"], range(masks.shape[2])):
        ys, xs = np.nonzero(masks[:, :, k])
        assert inst["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]  # XYXY, x2/y2 exclusive
        assert inst["area"] == masks[:, :, k].sum() and inst["label"] == "object"
    assert [inst["prompt_index"] for inst in result["instances"]] == list(range(len(rles)))
    # the same image again, sent as base64 JSON: only the prompt decoder runs
    hits = client.get("/health").json()["cache"]["hits"]
    again = client.post("/predict", json={"image": as_base64(pixels), "prompts": prompts, "adapter": "a2"})
    assert again.json()["results"][0]["cached"] is True
    assert again.json()["results"][0]["instances"] == result["instances"]
    assert client.get("/health").json()["cache"]["hits"] == hits + 1


def test_points_labels_and_post_processing(client: httpx.Client, sequential: Predictor) -> None:
    pixels, mask = scene(2)
    ys, xs = np.nonzero(mask)
    inside = [float(xs.mean()), float(ys.mean())]
    prompts = {"points": [inside, [2.0, 2.0]], "labels": [1, 0]}
    body = predict(client, pixels, prompts=prompts).json()  # default adapter: a1
    assert body["results"][0]["adapter"] == "a1"
    assert [i["segmentation"] for i in body["results"][0]["instances"]] == expected_rles(
        sequential, pixels, "a1", prompts
    )
    none = predict(client, pixels, prompts=prompts, post={"min_area": 96 * 128 + 1}).json()
    assert none["results"][0]["instances"] == []
    filled = predict(client, pixels, prompts=prompts, post={"fill_holes": True, "threshold": -1.0})
    assert filled.status_code == 200


def test_compare_answers_adapter_and_vanilla(client: httpx.Client, sequential: Predictor) -> None:
    pixels, _ = scene(3)
    prompts = {"boxes": [[20, 20, 90, 80]]}
    body = predict(client, pixels, prompts=prompts, adapter="a1", compare=True).json()
    assert [r["adapter"] for r in body["results"]] == ["a1", "vanilla"]
    for result in body["results"]:
        got = [i["segmentation"] for i in result["instances"]]
        assert got == expected_rles(sequential, pixels, result["adapter"], prompts)


def _bad(client: httpx.Client, **kwargs) -> httpx.Response:
    return client.post("/predict", **kwargs)


PIXELS = scene(4)[0]
BOX = {"boxes": [[10, 10, 50, 50]]}
# fmt: off
BAD_REQUESTS = {
    "not an image": (415, "not an image", lambda c: predict(c, b"GIF89a this is text", prompts=BOX)),
    "empty upload": (400, "empty", lambda c: predict(c, b"", prompts=BOX)),
    "not base64": (400, "not base64", lambda c: _bad(c, json={"image": "/etc/passwd", "prompts": BOX})),
    "a path field": (422, "unknown field 'image_path'", lambda c: _bad(c, json={"image_path": "/etc/passwd", "prompts": BOX})),
    "no image": (400, "no image", lambda c: _bad(c, json={"prompts": BOX})),
    "malformed JSON": (400, "not valid JSON", lambda c: _bad(c, content=b"{nope", headers={"content-type": "application/json"})),
    "bad request field": (400, "not valid JSON", lambda c: _bad(c, files={"image": ("x.png", png_bytes(PIXELS))}, data={"request": "{"})),
    "multipart without image": (400, "form field 'image'", lambda c: _bad(c, data={"request": "{}"}, files={"other": ("x", b"1")})),
    "content type": (415, "not supported", lambda c: _bad(c, content=b"x", headers={"content-type": "text/plain"})),
    "box outside": (422, "outside the 128 x 96 image", lambda c: predict(c, PIXELS, prompts={"boxes": [[10, 10, 500, 50]]})),
    "point outside": (422, "outside", lambda c: predict(c, PIXELS, prompts={"points": [[-3, 10]]})),
    "inverted box": (422, "inverted", lambda c: predict(c, PIXELS, prompts={"boxes": [[50, 50, 10, 10]]})),
    "box not 4 numbers": (422, "not 4 numbers", lambda c: predict(c, PIXELS, prompts={"boxes": [[1, 2, 3]]})),
    "bad labels": (422, "labels", lambda c: predict(c, PIXELS, prompts={"points": [[5, 5]], "labels": [3]})),
    "too many boxes": (422, "at most 8", lambda c: predict(c, PIXELS, prompts={"boxes": [[1, 1, 9, 9]] * 9})),
    "too many points": (422, "at most 8", lambda c: predict(c, PIXELS, prompts={"points": [[5, 5]] * 9})),
    "no prompt": (422, "no prompt", lambda c: predict(c, PIXELS, prompts={})),
    "unknown adapter": (404, "no adapter named 'polyp'", lambda c: predict(c, PIXELS, prompts=BOX, adapter="polyp")),
    "text to SAM": (422, "concept model", lambda c: predict(c, PIXELS, prompts={"text": ["polyp"]})),
    "compare vanilla": (422, "name an adapter", lambda c: predict(c, PIXELS, prompts=BOX, adapter="vanilla", compare=True)),
    "bad post option": (422, "nms_iou", lambda c: predict(c, PIXELS, prompts=BOX, post={"nms_iou": 2})),
    "unknown route": (404, "Not Found", lambda c: c.get("/files/etc/passwd")),
    "wrong method": (405, "Method Not Allowed", lambda c: c.get("/predict")),
}
# fmt: on


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_4xx_json_errors(client: httpx.Client, case: str) -> None:
    status, words, send = BAD_REQUESTS[case]
    reply = send(client)
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["status"] == status and words in body["error"], body
    assert "Traceback" not in reply.text


def test_token_and_limits(guarded: str) -> None:
    small = scene(5)[0][:40, :60]  # 2,400 pixels, under the 5,000 limit
    with httpx.Client(base_url=guarded, timeout=60) as anonymous:
        assert anonymous.get("/health").status_code == 200  # liveness needs no token
        for reply in (anonymous.get("/models"), predict(anonymous, small, prompts=BOX)):
            assert reply.status_code == 401 and "Bearer" in reply.json()["error"]
            assert reply.headers["www-authenticate"] == "Bearer"
    with httpx.Client(base_url=guarded, timeout=60, headers={"Authorization": "Bearer wrong"}) as wrong:
        assert wrong.get("/models").status_code == 401
    with httpx.Client(base_url=guarded, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as ok:
        assert ok.get("/models").status_code == 200
        assert predict(ok, small, prompts={"boxes": [[5, 5, 30, 30]]}).status_code == 200
        large = predict(ok, np.zeros((80, 80, 3), np.uint8), prompts=BOX)  # 6,400 pixels
        assert large.status_code == 413 and "--max-pixels 5000" in large.json()["error"]
        noise = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)  # ~30 kB of PNG
        heavy = ok.post("/predict", json={"image": as_base64(noise), "prompts": BOX})
        assert heavy.status_code == 413 and "upload limit" in heavy.json()["error"]
        big = ok.post("/predict", files={"image": ("x.png", b"0" * 30_000)})
        assert big.status_code == 413


def test_openapi_documents_the_api_offline(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"PredictRequest", "Prompts", "PostOptions", "PredictResponse"} <= set(
        schema["components"]["schemas"]
    )
    assert {"/health", "/models"} <= set(schema["paths"])
    docs = client.get("/docs").text
    assert "swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/").headers["content-type"].startswith("text/html")


def test_one_log_line_per_request(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="samlora.serve"):
        client.get("/health")
        predict(client, scene(6)[0], prompts=BOX)
        predict(client, scene(6)[0], prompts={"boxes": [[0, 0, 999, 9]]})
    lines = [r.getMessage() for r in caplog.records if r.name == "samlora.serve.app"]
    assert len(lines) == 3, lines
    assert " GET /health 200 " in lines[0]
    assert " POST /predict 200 " in lines[1] and "a1:miss:" in lines[1]
    assert " POST /predict 422 " in lines[2] and "outside" in lines[2]


def test_text_prompts_on_a_concept_server(tiny_dirs: dict, image: np.ndarray) -> None:
    from samlora.serve.engine import Engine, instances
    from samlora.serve.settings import ServeSettings
    from samlora.tasks.postprocess import PostProcess

    from .conftest import live_server

    concept = Predictor(str(tiny_dirs["sam3"]), device="cpu")
    post = {"threshold": 0.0, "top_k": 3, "nms_iou": 1.0}
    with (
        live_server(Engine(concept, {}, ServeSettings())) as url,
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        assert c.get("/models").json()["model"]["task"] == "concept"
        reply = predict(c, image, prompts={"text": ["square", "disc"]}, post=post)
        assert reply.status_code == 200, reply.text
        got = reply.json()["results"][0]["instances"]
        assert got and {i["label"] for i in got} <= {"square", "disc"}
        assert all(i["prompt_index"] == ["square", "disc"].index(i["label"]) for i in got)
        want = Predictor(str(tiny_dirs["sam3"]), device="cpu").predict(
            image, text=["square", "disc"], post=PostProcess(threshold=0.0, top_k=3, nms_iou=1.0)
        )
        assert got == instances(want)
        refused = predict(c, image, prompts=BOX)
        assert refused.status_code == 422 and "text prompts" in refused.json()["error"]
        blank = predict(c, image, prompts={"text": [" "]})
        assert blank.status_code == 422


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "upload",
    [
        _encoded(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
        _encoded(Image.new("RGB", (3000, 2), (200, 10, 10)), "PNG"),
        _encoded(Image.new("L", (40, 30), 128), "PNG"),
        _encoded(Image.new("RGBA", (40, 30), (10, 200, 10, 0)), "PNG"),
        _encoded(Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50), "PNG"),
        _encoded(Image.new("RGB", (40, 30), (10, 10, 200)), "JPEG"),
        _encoded(Image.new("P", (40, 30), 3), "GIF"),
    ],
    ids=["1x1", "3000x2", "gray", "rgba", "16-bit", "jpeg", "gif"],
)
def test_odd_images_are_answered(client: httpx.Client, upload: bytes) -> None:
    width, height = Image.open(io.BytesIO(upload)).size
    reply = predict(
        client, upload, prompts={"boxes": [[0, 0, width, height]], "points": [[width / 2, height / 2]]}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["image"] == {**reply.json()["image"], "width": width, "height": height}
