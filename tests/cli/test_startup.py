"""The CLI answers at once: parsing and ``--help`` of every subcommand import no torch, transformers,
peft or accelerate (``python -X importtime`` shows every module a process imports), and an
unreachable hub fails within seconds with one clear message instead of the hub client's retries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "accelerate")


def _samlora(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "samlora", *args],
        capture_output=True, text=True, timeout=timeout, env=environment, check=False,
    )  # fmt: skip


def _heavy_imports(importtime_stderr: str) -> list[str]:
    """Top-level heavy packages in ``-X importtime`` output (``import time: self | cumulative | name``)."""
    names = [
        line.rsplit("|", 1)[-1].strip() for line in importtime_stderr.splitlines() if "import time:" in line
    ]
    return sorted({n for n in names if n.split(".")[0] in HEAVY})


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["info", "--presets"]])
def test_help_and_presets_import_nothing_heavy(args: list[str]) -> None:
    result = _samlora(args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "import time:" in result.stderr  # importtime really ran
    assert _heavy_imports(result.stderr) == []
    if args == ["info", "--presets"]:
        for name in ("samlora-reference", "tiny-sam3", "medical", "sam3_light"):
            line = next(line for line in result.stdout.splitlines() if line.strip().startswith(name + " "))
            assert len(line.split()) > 3, line  # a one-line description after the name


def test_every_registered_subcommand_help_imports_nothing_heavy() -> None:
    """Every subcommand of the table (including ones added later) prints its help without heavy imports."""
    script = (
        "import sys\n"
        "from samlora.cli.main import build_parser, main\n"
        "from samlora.cli.registry import COMMANDS\n"
        "build_parser()\n"
        "for path in sorted(COMMANDS):\n"
        "    try:\n"
        "        main([*path, '--help'])\n"
        "    except SystemExit as exit_:\n"
        "        assert exit_.code == 0, (path, exit_.code)\n"
        "    print('HELPED', ' '.join(path), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    helped = [line.split(" ", 1)[1] for line in result.stderr.splitlines() if line.startswith("HELPED ")]
    assert {"train", "predict", "info", "eval", "config validate", "config migrate", "demo"} <= set(helped)
    assert result.stdout.count("usage: samlora") >= len(helped)
    assert _heavy_imports(result.stderr) == []


def _silent_server() -> socket.socket:
    """A socket that accepts TCP connections (the kernel does) but never answers: a hung hub."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


@pytest.mark.parametrize("endpoint", ["refused", "silent"])
def test_unreachable_hub_fails_fast_without_retries(endpoint: str) -> None:
    """No HF_HUB_OFFLINE, the hub endpoint refuses connections or never answers: one probe with a
    short timeout, then the clear message; the subprocess timeout bounds the whole command."""
    server = _silent_server() if endpoint == "silent" else None
    url = f"http://127.0.0.1:{server.getsockname()[1]}" if server else "http://127.0.0.1:9"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "samlora", "info", "someone/model-not-cached"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**env, "HF_ENDPOINT": url, "SAMLORA_HUB_TIMEOUT": "2"},
        )  # fmt: skip
    finally:
        if server:
            server.close()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Retry" not in result.stderr and "Traceback" not in result.stderr
    assert "not reachable" in result.stderr and "local folder" in result.stderr
    assert result.stderr.count("someone/model-not-cached") == 1  # one message, no repeated warnings


def test_hf_hub_offline_is_honoured_without_touching_the_network() -> None:
    server = _silent_server()
    server.setblocking(False)
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        result = _samlora(["info", "someone/model-not-cached"], HF_HUB_OFFLINE="1", HF_ENDPOINT=url)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    finally:
        server.close()
    assert result.returncode == 2 and "not reachable" in result.stderr and "Retry" not in result.stderr
