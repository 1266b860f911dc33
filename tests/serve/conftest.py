"""Live servers for the API and browser tests: uvicorn in a thread on a free loopback port.

The promptable server runs the shipped reference model (its masks are real shapes, not the
noise of a random tiny model) with two adapters ``a1`` and ``a2``; a second engine over the same
predictor has a token and small limits; a concept server runs the tiny SAM 3.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlora.predict.predictor import Predictor
from samlora.serve.app import build_app
from samlora.serve.engine import Engine
from samlora.serve.server import bind, make_server, url_of
from samlora.serve.settings import ServeSettings
from samlora.tasks.postprocess import PostProcess
from tests.predict.test_predictor import make_adapter

REFERENCE = "samlora-reference"
TOKEN = "s3cret-token"


@contextmanager
def live_server(engine: Engine) -> Iterator[str]:
    """Serve ``engine``'s app on 127.0.0.1:<free port> in a thread; yields the base URL."""
    sock = bind("127.0.0.1", 0)
    server = make_server(build_app(engine), log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def png_bytes(pixels: np.ndarray) -> bytes:
    """An ``H x W x 3`` uint8 array as PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def as_base64(pixels: np.ndarray) -> str:
    return base64.b64encode(png_bytes(pixels)).decode("ascii")


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 128 image holding a few flat shapes (uint8 RGB) and its first shape's mask."""
    from samlora.data.synthetic import shapes_image

    rng = np.random.default_rng(seed)
    pixels, masks = shapes_image(rng, 96, 128)[:2]
    return pixels, masks[0]


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from samlora.models.presets import preset_folder

    root = tmp_path_factory.mktemp("serve-adapters")
    return {f"a{i}": make_adapter(preset_folder(REFERENCE), root / f"a{i}", seed=i) for i in (1, 2)}


@pytest.fixture(scope="session")
def predictor(adapter_dirs: dict[str, Path]) -> Predictor:
    return Predictor(REFERENCE, adapters=dict(adapter_dirs), device="cpu")


@pytest.fixture(scope="session")
def engine(predictor: Predictor, adapter_dirs: dict[str, Path]) -> Engine:
    return Engine(predictor, dict(adapter_dirs), ServeSettings(cache_size=4, max_prompts=8))


@pytest.fixture(scope="session")
def server(engine: Engine) -> Iterator[str]:
    with live_server(engine) as url:
        yield url


@pytest.fixture(scope="session")
def guarded(predictor: Predictor, adapter_dirs: dict[str, Path]) -> Iterator[str]:
    """A server with a token, a 20 kB upload limit and a 5,000-pixel image limit."""
    settings = ServeSettings(token=TOKEN, max_upload_bytes=20_000, max_pixels=5_000, cache_size=2)
    with live_server(Engine(predictor, dict(adapter_dirs), settings)) as url:
        yield url


@pytest.fixture(scope="session")
def sequential(adapter_dirs: dict[str, Path]) -> Predictor:
    """A Predictor of its own (not the server's): what plain sequential calls give."""
    return Predictor(REFERENCE, adapters=dict(adapter_dirs), device="cpu")


def expected_rles(
    predictor: Predictor, pixels: np.ndarray, adapter: str, prompts: dict, post: PostProcess | None = None
) -> list[dict]:
    """The COCO RLEs a plain ``use`` + ``set_image`` + ``predict`` gives (empty masks dropped, as the server)."""
    from samlora.tasks.concept.scoring import rle

    predictor.use(adapter)
    predictor.set_image(pixels)
    pred = predictor.predict(
        boxes=prompts.get("boxes"), points=prompts.get("points"), point_labels=prompts.get("labels"),
        post=post or PostProcess(threshold=float("-inf")),
    )  # fmt: skip
    return [rle(mask) for mask in pred.masks]


def predict(client, pixels: np.ndarray | bytes, **request) -> object:
    """POST /predict as a multipart upload; returns the httpx response."""
    import json

    data = pixels if isinstance(pixels, bytes) else png_bytes(pixels)
    return client.post(
        "/predict", files={"image": ("x.png", data, "image/png")}, data={"request": json.dumps(request)}
    )


def pytest_terminal_summary(terminalreporter) -> None:
    """Say, at the end of any run, when the browser tests were skipped and how to enable them."""
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        if "chromium-driver" in message:
            terminalreporter.write_line(f"tests/serve/test_page.py: {message.removeprefix('Skipped: ')}")
            break
