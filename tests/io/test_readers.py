"""Safe readers: every failure is a SamloraError naming the file; depth, size and alias limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from samlora.errors import SamloraError
from samlora.io.readers import parse_yaml, read_json, read_text, too_deep


def test_json_limits_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    for content, words in [
        (b"[" * 5000 + b"]" * 5000, "deeper than 64"),
        (b"[" * 65 + b"]" * 65, "deeper than 64"),
        (b'{"a": "\xff"}', "not UTF-8 text: byte 0xff at line 1"),
        (b'{"a": 1,\n "b": }', "not valid JSON: Expecting value at line 2"),
    ]:
        path.write_bytes(content)
        with pytest.raises(SamloraError, match=words):
            read_json(path, "test file")
    path.write_bytes(b"[" * 64 + b"]" * 64)
    assert too_deep(read_json(path, "test file"), 63)
    path.write_bytes(b"\xef\xbb\xbf{}")  # a byte-order mark is fine
    assert read_json(path, "test file") == {}
    with pytest.raises(SamloraError, match="MiB, more than the 0 MiB"):
        read_text(path, "test file", max_bytes=1)
    with pytest.raises(SamloraError, match="does not exist"):
        read_text(tmp_path / "none", "test file")
    with pytest.raises(SamloraError, match="is a folder"):
        read_text(tmp_path, "test file")


def test_yaml_alias_bomb_is_refused_at_once() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]" for k in range(1, 30)]
    with pytest.raises(SamloraError, match="expands to .* values once its aliases"):  # 10**31 values: refused
        parse_yaml("\n".join(lines), "bomb.yaml")
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}
    assert parse_yaml("a: [1, 2\n", "flag", lenient=True) == "a: [1, 2\n"
    with pytest.raises(SamloraError, match="invalid YAML in bad.yaml at line 2"):
        parse_yaml("a: 1\n b: [\n", "bad.yaml")
