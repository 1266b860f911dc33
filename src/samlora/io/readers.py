"""Readers that turn every failure into a :class:`~samlora.errors.SamloraError` naming the file and the fix.

Text must be UTF-8 (a byte-order mark is allowed); JSON and YAML get a size limit, a nesting
depth limit and, for YAML, a limit on how many nodes its aliases expand to (an alias bomb is
refused in microseconds instead of hanging whatever walks the result). safetensors files have
their header checked (a truncated, empty or garbage file is refused before anything loads it).

Every reader takes ``error``: the exception class (or factory) to raise, so that each caller keeps
its own kind (``DataError``, ``AdapterError``, ``ModelLoadError``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from samlora.errors import SamloraError

from .disk import describe

ErrorFactory = Callable[[str], SamloraError]

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings accepted in any JSON or YAML file (COCO needs 5)."""
MAX_YAML_NODES = 200_000
"""Most YAML nodes a document may expand to once its aliases are followed (a config has ~300)."""
MiB = 1 << 20


def read_bytes(
    path: Path | str, what: str, error: ErrorFactory = SamloraError, max_bytes: int | None = None
) -> bytes:
    """The bytes of ``path``; missing, unreadable or too large -> ``error`` naming ``what`` and the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise error(
                f"{what} {path} is {size / MiB:.1f} MiB, more than the {max_bytes / MiB:.0f} MiB samlora reads "
                "for such a file; check that it is the right file"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder, not a file; name the file") from None
    except OSError as err:
        raise error(f"cannot read {what} {path}: {describe(err)}") from err
    except MemoryError:
        raise error(f"{what} {path} does not fit in memory; check that it is the right file") from None


def decode_text(data: bytes, path: Path | str, what: str, error: ErrorFactory = SamloraError) -> str:
    """UTF-8 text of ``data`` (a leading byte-order mark is dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise error(
            f"{what} {path} is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line} (byte {err.start}) "
            "cannot be decoded. Fix: save the file as UTF-8"
        ) from None


def read_text(
    path: Path | str, what: str, error: ErrorFactory = SamloraError, max_bytes: int | None = None
) -> str:
    """UTF-8 text of ``path``, every failure as ``error``."""
    return decode_text(read_bytes(path, what, error, max_bytes), path, what, error)


def too_deep(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether lists/dicts nest deeper than ``max_depth`` in a parsed value (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _depth_message(what: str, path: Path | str, max_depth: int) -> str:
    return (
        f"{what} {path} nests lists/objects deeper than {max_depth} levels; no samlora file needs that many "
        "(a broken export, or a file made to crash readers). Fix: regenerate the file"
    )


def parse_json(
    text: str, path: Path | str, what: str, error: ErrorFactory = SamloraError, max_depth: int = MAX_DEPTH
) -> Any:
    """Parse JSON text of ``path``; syntax errors name line and column; nesting is limited."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(
            f"{what} {path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno} "
            f"(character {err.pos}). Fix: repair the file there (a truncated download or a hand edit?)"
        ) from None
    except RecursionError:
        raise error(_depth_message(what, path, max_depth)) from None
    if too_deep(value, max_depth):
        raise error(_depth_message(what, path, max_depth))
    return value


def read_json(
    path: Path | str,
    what: str,
    error: ErrorFactory = SamloraError,
    max_bytes: int = 64 * MiB,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Read and parse a JSON file; every failure (missing, not UTF-8, bad syntax, too deep or large) as ``error``."""
    return parse_json(read_text(path, what, error, max_bytes), path, what, error, max_depth)


def _expanded_nodes(root: yaml.Node, max_depth: int) -> tuple[int, int]:
    """(nodes once aliases are expanded, depth) of a composed YAML graph, in time linear in its size."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack, seen = [root], set()
    while stack:  # post-order without recursion; aliases are shared node objects
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        children = _children(node)
        sizes[id(node)] = 1 + sum(sizes.get(id(c), 1) for c in children)
        depths[id(node)] = 1 + max((depths.get(id(c), 1) for c in children), default=0)
        if depths[id(node)] > max_depth + 1:
            return sizes[id(node)], depths[id(node)]
    return sizes[id(root)], depths[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def parse_yaml(
    text: str,
    source: str,
    error: ErrorFactory = SamloraError,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_YAML_NODES,
    lenient: bool = False,
) -> Any:
    """Parse YAML safely (``yaml.SafeLoader``) with depth and alias-expansion limits.

    ``lenient``: a syntax error returns ``text`` itself (how a command-line value that is not YAML
    is read); limit violations are errors either way.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as err:
            if lenient:
                return text
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise error(f"invalid YAML in {source}{where}: {getattr(err, 'problem', None) or err}") from None
        except RecursionError:
            raise error(_depth_message("YAML", source, max_depth)) from None
        if node is None:
            return None
        nodes, depth = _expanded_nodes(node, max_depth)
        if depth > max_depth + 1:
            raise error(_depth_message("YAML", source, max_depth))
        if nodes > max_nodes:
            raise error(
                f"the YAML of {source} expands to {nodes} values once its aliases (*name) are followed, more "
                f"than the {max_nodes} samlora accepts (an alias bomb?). Fix: write the values out, without "
                "aliases that repeat aliases"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def _bad_safetensors(
    path: Path | str, what: str, size: int, reason: str, error: ErrorFactory
) -> SamloraError:
    return error(
        f"{what} {path} is not a valid safetensors file ({size} bytes; {reason}): it is truncated, empty or "
        "not safetensors. Fix: copy it again, or save it again with safetensors"
    )


def _parse_header(head: bytes, size: int, path: Path | str, what: str, error: ErrorFactory) -> list[str]:
    """Tensor names of a safetensors file from its first bytes (``head``) and total ``size``."""
    if size < 8 or len(head) < 8:
        raise _bad_safetensors(path, what, size, "shorter than its 8-byte header length", error)
    length = int.from_bytes(head[:8], "little")
    if length > size - 8 or length > 100 * MiB:
        raise _bad_safetensors(path, what, size, f"its header claims {length} bytes", error)
    try:
        header = json.loads(head[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad_safetensors(path, what, size, "its header is not JSON", error) from None
    if not isinstance(header, dict):
        raise _bad_safetensors(path, what, size, "its header is not a JSON object", error)
    data_size, end, names = size - 8 - length, 0, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = (int(v) for v in info["data_offsets"])
            shape = [int(v) for v in info["shape"]]
            count = 1
            for dim in shape:
                count *= dim
            width = _DTYPE_BYTES.get(info["dtype"])
        except (TypeError, ValueError, KeyError):
            raise _bad_safetensors(path, what, size, f"tensor '{name}' is described wrongly", error) from None
        if not 0 <= start <= stop <= data_size or (width is not None and stop - start != count * width):
            raise _bad_safetensors(path, what, size, f"tensor '{name}' lies outside the file", error)
        end = max(end, stop)
        names.append(name)
    if end != data_size:
        raise _bad_safetensors(path, what, size, f"{data_size - end} bytes after the last tensor", error)
    return names


def safetensors_names(
    data: bytes, path: Path | str, what: str = "safetensors file", error: ErrorFactory = SamloraError
) -> list[str]:
    """Check the safetensors file whose bytes are ``data``; return its tensor names."""
    return _parse_header(
        data[: 8 + min(int.from_bytes(data[:8].ljust(8, b"\0"), "little"), 100 * MiB)],
        len(data),
        path,
        what,
        error,
    )


def check_safetensors(path: Path | str, what: str, error: ErrorFactory = SamloraError) -> list[str]:
    """Check a safetensors file's header (size, JSON, offsets covering the file); return its tensor names.

    Reads only the header, so it is cheap for model weights of any size.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head.ljust(8, b"\0"), "little")
            if len(head) == 8 and length <= min(size - 8, 100 * MiB):
                head += f.read(length)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist; it must be written with safetensors") from None
    except OSError as err:
        raise error(f"cannot read {what} {path}: {describe(err)}") from err
    return _parse_header(head, size, path, what, error)
