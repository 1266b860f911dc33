"""The page in real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Without Chromium these tests skip, saying how to enable them; under CI (``CI`` set) they fail
instead, so CI never skips them. ``SAMLORA_CHROMIUM`` points at another Chromium binary. ``SAMLORA_SCREENSHOT=docs/serve.png`` also writes README's
screenshot (with ``SAMLORA_SCREENSHOT_ADAPTER=RUN``: of that adapter rather than the test's).
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

from samlora.predict.predictor import Predictor

from .conftest import expected_rles

CHROMIUM = os.environ.get("SAMLORA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOW = (
    "browser tests need Debian's Chromium and its driver: apt-get install -y chromium chromium-driver "
    "(and pip install selenium); .ci/run installs them"
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,860"]  # fmt: skip


def _browser_or_skip() -> None:
    missing = [p for p in (CHROMIUM, DRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing under CI: {HOW}")
        pytest.skip(f"{', '.join(missing)} not found: {HOW}")


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, downloads: Path):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False,
         "profile.default_content_setting_values.automatic_downloads": 1},
    )  # fmt: skip
    browser = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, tuple[int, int]]:
    """A demo colonoscopy frame (256 x 256) saved as PNG, and its polyp's innermost pixel (x, y)."""
    from samlora.demo.domains import target_image

    pixels, masks = target_image(np.random.default_rng(3), "A", 256)
    distance = ndimage.distance_transform_edt(masks[0])
    y, x = np.unravel_index(int(distance.argmax()), distance.shape)
    path = tmp_path_factory.mktemp("page-images") / "frame.png"
    Image.fromarray(pixels).save(path)
    return path, pixels, (int(x), int(y))


class Page:
    """The page in the browser, and the few moves a person makes on it."""

    def __init__(self, driver, url: str, state: str = "ready"):
        self.d, self.url = driver, url
        driver.get(url + "/")
        self.wait(lambda: self.js("return document.body.dataset.state") == state, timeout=30)

    def js(self, script: str, *args):
        return self.d.execute_script(script, *args)

    def element(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, css)

    def open(self, path: Path) -> None:
        self.element("#file").send_keys(str(path))
        self.wait(lambda: self.js("return document.body.dataset.state") == "image")

    def wait(self, condition, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"page state {self.js('return document.body.dataset.state')!r}: "
                                     f"{self.element('#status').text}")  # fmt: skip
            time.sleep(0.05)

    def answered(self, act, ok: bool = True) -> dict:
        """Do ``act`` and wait for the server's answer; returns it (``None`` without prompts).

        ``ok``: the answer must not be an error."""
        before = self.js("return samloraPage.answered")
        act()
        self.wait(lambda: self.js("return samloraPage.answered") > before)
        if ok:
            assert self.js("return document.body.dataset.state") != "error", self.element("#status").text
        return self.js("return samloraPage.answer")

    def type_in(self, css: str, value: str, ok: bool = True) -> dict:
        """Replace the text of input ``css`` by typing ``value``, then leave it (its change event);
        waits for the server's answer."""
        from selenium.webdriver.common.keys import Keys

        box = self.element(css)
        box.send_keys(Keys.CONTROL, "a")  # selected: typing replaces it, and nothing is sent yet
        return self.answered(lambda: box.send_keys(value or Keys.BACKSPACE, Keys.TAB), ok)

    def offset(self, x: float, y: float, view: int = 0) -> tuple[int, int]:
        """CSS offset from the canvas centre of image pixel ``(x, y)`` of view ``view``."""
        rect = self.js(
            "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", self.canvas(view)
        )
        return round((x + 0.5) * rect[0] / 256 - rect[0] / 2), round((y + 0.5) * rect[1] / 256 - rect[1] / 2)

    def canvas(self, view: int = 0):
        return self.element(f"#view-{view} canvas")

    def click(self, x: float, y: float, right: bool = False) -> dict:
        from selenium.webdriver import ActionChains

        dx, dy = self.offset(x, y)
        chain = ActionChains(self.d).move_to_element_with_offset(self.canvas(), dx, dy)
        return self.answered((chain.context_click() if right else chain.click()).perform)

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> dict:
        from selenium.webdriver import ActionChains

        (x1, y1), (x2, y2) = self.offset(*start), self.offset(*end)
        chain = ActionChains(self.d).move_to_element_with_offset(self.canvas(), x1, y1).click_and_hold()
        return self.answered(chain.move_by_offset(x2 - x1, y2 - y1).release().perform)

    def pixel(self, x: int, y: int, view: int = 0) -> list[int]:
        script = "return Array.from(arguments[0].getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data)"
        return self.js(script, self.canvas(view), x, y)

    def choose(self, adapter: str) -> dict:
        from selenium.webdriver.support.ui import Select

        return self.answered(lambda: Select(self.element("#adapter")).select_by_value(adapter))

    def prompts(self) -> dict:
        return self.js("return samloraPage.prompts")


@pytest.fixture()
def page(driver, server: str, frame) -> Page:
    opened = Page(driver, server)
    opened.open(frame[0])
    return opened


def _rles(answer: dict, result: int = 0) -> list[dict]:
    return [inst["segmentation"] for inst in answer["results"][result]["instances"]]


def test_page_loads_from_the_server_alone_and_a_click_draws_a_mask(
    page: Page, frame, sequential: Predictor
) -> None:
    path, pixels, (x, y) = frame
    assert page.d.title == "samlora serve"
    options = page.js("return Array.from(document.querySelectorAll('#adapter option')).map(o => o.value)")
    assert options == ["a1", "a2", "vanilla"]
    assert page.pixel(5, 5)[:3] == pixels[5, 5].tolist()  # the image is drawn
    answer = page.click(x, y)
    prompts = page.prompts()
    assert (
        prompts["labels"] == [1]
        and abs(prompts["points"][0][0] - x) <= 1
        and abs(prompts["points"][0][1] - y) <= 1
    )
    want = expected_rles(sequential, pixels, "a1", {"points": prompts["points"], "labels": [1]})
    assert _rles(answer) == want and want
    mask = mask_utils.decode(want[0]).astype(bool)
    my, mx = np.unravel_index(int(ndimage.distance_transform_edt(mask).argmax()), mask.shape)
    assert page.pixel(int(mx), int(my))[:3] != pixels[my, mx].tolist()  # the overlay covers the mask
    outside = np.argwhere(~ndimage.binary_dilation(mask, iterations=12))
    far = outside[len(outside) // 2]
    assert page.pixel(int(far[1]), int(far[0]))[:3] == pixels[far[0], far[1]].tolist()
    assert page.element("#view-0").get_attribute("data-instances") == str(len(want))
    assert page.element("#view-0 .scores li").text.startswith("object: score ")
    loaded = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(page.url) for name in loaded), loaded  # no CDN, no network


def test_adapter_menu_and_side_by_side(page: Page, frame, sequential: Predictor, tmp_path: Path) -> None:
    path, pixels, (x, y) = frame
    first = page.click(x, y)
    second = page.choose("a2")
    assert second["results"][0]["adapter"] == "a2" and _rles(second) != _rles(first)
    both = page.answered(page.element("#compare").click)
    assert [r["adapter"] for r in both["results"]] == ["a2", "vanilla"]
    assert page.element("#view-1").is_displayed()
    captions = [page.element(f"#view-{v} figcaption").text for v in (0, 1)]
    assert captions == ["a2", "vanilla"]
    points = page.prompts()["points"]
    assert _rles(both, 1) == expected_rles(sequential, pixels, "vanilla", {"points": points, "labels": [1]})
    left, right = (page.js("return arguments[0].toDataURL()", page.canvas(v)) for v in (0, 1))
    assert left != right  # the two views draw different masks
    shot = tmp_path / "page.png"
    page.d.save_screenshot(str(shot))
    assert Image.open(shot).size[0] >= 1000
    if os.environ.get("SAMLORA_SCREENSHOT"):
        _readme_screenshot(page, frame, Path(os.environ["SAMLORA_SCREENSHOT"]))


def test_negative_click_box_undo_and_clear(page: Page, frame) -> None:
    path, pixels, (x, y) = frame
    page.click(x, y)
    page.click(20, 20, right=True)
    assert page.prompts()["labels"] == [1, 0]
    answer = page.drag((x - 40, y - 40), (x + 40, y + 40))
    box = page.prompts()["box"]
    assert box and abs(box[0] - (x - 40)) <= 2 and abs(box[3] - (y + 40)) <= 2
    assert len(answer["results"][0]["instances"]) == 1  # one object: the box and its points
    page.answered(page.element("#undo").click)
    assert page.prompts()["box"] is None and len(page.prompts()["points"]) == 2
    page.answered(page.element("#clear").click)
    assert page.prompts() == {"points": [], "labels": [], "box": None}
    assert page.js("return samloraPage.answer") is None
    assert page.element("#view-0").get_attribute("data-instances") == "0"


def test_downloads_png_masks_and_coco_rle_json(page: Page, frame, downloads: Path) -> None:
    answer = page.click(*frame[2])
    page.element("#download-json").click()
    page.element("#download-png").click()
    names = [f"frame_a1_{k}.png" for k in range(len(answer["results"][0]["instances"]))] + [
        "frame_masks.json"
    ]
    page.wait(lambda: all((downloads / n).is_file() for n in names), timeout=30)
    assert json.loads((downloads / "frame_masks.json").read_text()) == answer
    png = np.asarray(Image.open(downloads / "frame_a1_0.png").convert("L"))
    assert set(np.unique(png).tolist()) <= {0, 255}
    assert np.array_equal(png == 255, mask_utils.decode(_rles(answer)[0]).astype(bool))


def test_post_processing_controls_reach_the_server(page: Page, frame, sequential: Predictor) -> None:
    from samlora.tasks.postprocess import PostProcess

    path, pixels, (x, y) = frame
    first = page.click(x, y)
    assert page.js("return samloraPage.request.post") == {"min_area": 0, "fill_holes": False}
    instance = first["results"][0]["instances"][0]
    assert not page.element("#post-threshold").is_displayed()  # folded until opened
    page.element("#post summary").click()
    assert not page.element("#post-nms").is_displayed()  # NMS and top-k are for text prompts

    def found(css: str, value: str) -> list[dict]:
        return page.type_in(css, value)["results"][0]["instances"]

    assert found("#post-threshold", f"{instance['score'] + 0.01:.4f}") == []
    assert page.element("#view-0").get_attribute("data-instances") == "0"
    assert found("#post-threshold", f"{instance['score'] - 0.01:.4f}")
    assert found("#post-threshold", "") and "threshold" not in page.js("return samloraPage.request.post")
    clicked = {"points": page.prompts()["points"], "labels": [1]}
    half = instance["area"] // 2  # also removes the mask's pieces smaller than this, as predict does
    want = expected_rles(sequential, pixels, "a1", clicked, PostProcess(threshold=-math.inf, min_area=half))
    assert _rles(page.type_in("#post-min-area", str(half))) == want
    assert found("#post-min-area", str(instance["area"] + 1)) == []
    assert page.js("return samloraPage.request.post") == {
        "min_area": instance["area"] + 1,
        "fill_holes": False,
    }
    found("#post-min-area", "0")
    filled = page.answered(page.element("#post-fill").click)
    assert page.js("return samloraPage.request.post") == {"min_area": 0, "fill_holes": True}
    want = expected_rles(sequential, pixels, "a1", clicked, PostProcess(threshold=-math.inf, fill_holes=True))
    assert _rles(filled) == want
    page.type_in("#post-min-area", "-3", ok=False)  # the server's own message, on the page
    assert page.js("return document.body.dataset.state") == "error"
    assert "min_area" in page.element("#status").text


def _readme_screenshot(page: Page, frame, out: Path) -> None:
    """README's picture: the frame clicked once, adapter | vanilla (SAMLORA_SCREENSHOT_ADAPTER's if set)."""
    from samlora.cli.serve import parse_adapters
    from samlora.serve.engine import Engine
    from samlora.serve.settings import ServeSettings

    from .conftest import REFERENCE, live_server

    named = os.environ.get("SAMLORA_SCREENSHOT_ADAPTER")
    if named:
        adapters = parse_adapters([named])
        engine = Engine(Predictor(REFERENCE, adapters=adapters, device="cpu"), adapters, ServeSettings())
        with live_server(engine) as url:
            fresh = Page(page.d, url)
            fresh.open(frame[0])
            fresh.element("#compare").click()
            fresh.click(*frame[2])
            _shoot(fresh, out)
    else:
        _shoot(page, out)


def _shoot(page: Page, out: Path) -> None:
    page.d.set_window_size(1000, 900)
    page.d.save_screenshot(str(out))
    Image.open(out).convert("RGB").quantize(128, method=Image.Quantize.MAXCOVERAGE).save(out, optimize=True)


def test_drop_an_image_on_the_page(driver, server: str, frame) -> None:
    page = Page(driver, server)
    page.js(
        """const [bytes, name] = arguments;
        const file = new File([Uint8Array.from(atob(bytes), c => c.charCodeAt(0))], name, {type: "image/png"});
        const data = new DataTransfer();
        data.items.add(file);
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));""",
        base64.b64encode(frame[0].read_bytes()).decode(),
        "dropped.png",
    )
    page.wait(lambda: page.js("return document.body.dataset.state") == "image")
    assert page.js("return [samloraPage.width, samloraPage.height, samloraPage.name]") == [
        256,
        256,
        "dropped",
    ]
    assert page.click(*frame[2])["results"][0]["instances"]


def test_token_is_asked_for_and_used(driver, guarded: str) -> None:
    from .conftest import TOKEN

    page = Page(driver, guarded, state="token")
    assert page.element("#token-box").is_displayed() and "token" in page.element("#status").text
    page.element("#token").send_keys(TOKEN)
    page.element("#token-use").click()
    page.wait(lambda: page.js("return document.body.dataset.state") == "ready")
    assert page.js("return samloraPage.models.adapters.length") == 2
    page.js("sessionStorage.clear()")


def test_text_prompts_on_a_concept_model(driver, tiny_dirs: dict, frame) -> None:
    from samlora.serve.engine import Engine
    from samlora.serve.settings import ServeSettings

    from .conftest import live_server

    engine = Engine(Predictor(str(tiny_dirs["sam3"]), device="cpu"), {}, ServeSettings())
    with live_server(engine) as url:
        page = Page(driver, url)
        assert page.element("#text-form").is_displayed() and not page.element(".clicks").is_displayed()
        page.open(frame[0])
        page.element("#text").send_keys("square, disc")
        answer = page.answered(page.element("#text-go").click)
        assert page.js("return samloraPage.texts") == ["square", "disc"]
        assert {i["label"] for i in answer["results"][0]["instances"]} <= {"square", "disc"}
        page.element("#post summary").click()
        assert page.element("#post-nms").is_displayed() and page.element("#post-top-k").is_displayed()
        every = page.type_in("#post-threshold", "0")["results"][0]["instances"]
        assert page.js("return samloraPage.request.post") == {
            "threshold": 0, "nms_iou": 0.5, "top_k": 100, "min_area": 0, "fill_holes": False
        }  # fmt: skip
        per_prompt = page.type_in("#post-top-k", "1")["results"][0]["instances"]
        assert len(every) > 2 and sorted(i["prompt_index"] for i in per_prompt) == [0, 1]
        page.type_in("#post-nms", "1")
        assert page.js("return samloraPage.request.post")["nms_iou"] == 1
