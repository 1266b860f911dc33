"""``samlora serve`` on the command line: help, adapter names, a real process started and stopped by signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from samlora.cli import main
from samlora.cli.serve import parse_adapters
from samlora.errors import SamloraError
from tests.predict.test_predictor import make_adapter
from tests.serve.conftest import png_bytes

FLAGS = ["--model", "--adapter", "--host", "--port", "--device", "--precision", "--resolution", "--token",
         "--max-pixels", "--max-upload-mb", "--max-prompts", "--cache-size"]  # fmt: skip


def test_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert re.search(rf"{flag}\b.*\n?\s+\S", out), flag
    assert "127.0.0.1" in out and "samlora[serve]" in out


def test_adapter_names(tmp_path: Path) -> None:
    for folder in ("runs/polyp/best", "skin"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "adapter_config.json").write_text("{}")
    run, skin = tmp_path / "runs/polyp", tmp_path / "skin"
    assert parse_adapters([str(run), f"mine={skin}"]) == {"polyp": run / "best", "mine": skin}
    with pytest.raises(SamloraError, match="two adapters are named 'polyp'"):
        parse_adapters([str(run), f"polyp={skin}"])
    with pytest.raises(SamloraError, match="'vanilla' names the base model"):
        parse_adapters([f"vanilla={skin}"])


def test_missing_extra_names_the_install_command(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    assert main(["serve", "--model", "tiny-sam"]) == 2
    assert "pip install 'samlora[serve]'" in capsys.readouterr().err


def test_taken_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--model", "tiny-sam", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_process_serves_and_stops_cleanly_on_signal(
    stop: signal.Signals, tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    adapter = make_adapter(tiny_dirs["sam"], tmp_path / "runs" / "polyp" / "best", seed=1)
    cmd = [sys.executable, "-m", "samlora", "serve", "--model", str(tiny_dirs["sam"]),
           "--adapter", str(adapter.parent), "--port", "0", "--token", "t0k"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy()
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/", lines[-1])
            if found:
                break
        assert found, "".join(lines)
        assert "with polyp, vanilla" in lines[-1]
        url = found.group(1)
        headers = {"Authorization": "Bearer t0k"}
        assert httpx.get(f"{url}/models", headers=headers).json()["adapters"][0]["name"] == "polyp"
        pixels = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
        reply = httpx.post(f"{url}/predict", headers=headers, files={"image": ("x.png", png_bytes(pixels))},
                           data={"request": '{"prompts": {"boxes": [[5, 5, 30, 30]]}, "compare": true}'})  # fmt: skip
        assert reply.status_code == 200 and len(reply.json()["results"]) == 2
        proc.send_signal(stop)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    log = "".join(lines) + out
    assert re.search(r"GET /models 200 .* ms", log) and re.search(r"POST /predict 200 .* polyp:miss:", log)
    assert f"stopped on {stop.name}" in log and "Traceback" not in log
