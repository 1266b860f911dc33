"""The package layout shows the flow: imports run one way, no cycles, no prefixed siblings, small files.

Run alone with ``python -m pytest tests/test_layout.py -q``; ``python tests/test_layout.py``
prints the step-to-step import table.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "samlora"
# The flow, bottom to top: a module may import its own step and the steps before it.
STEPS = [
    "errors",
    "io",
    "config",
    "data",
    "models",
    "lora",
    "tasks",
    "training",
    "evaluate",
    "predict",
    "serve",
    "export",
    "cli",
    "demo",
]
ON_TOP = ("cli", "demo")  # both sit on everything; the CLI's demo command runs the demo
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """samlora modules imported by ``name`` anywhere in the file (lazy imports in functions too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "samlora"
            and [a.name for a in node.names] == ["__version__"]
        ):
            continue  # the version constant of the root, which imports nothing
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names]
            # the package itself counts unless every name is one of its modules
            targets = subs if all(t in known for t in subs) else [*subs, target]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("samlora"):
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def step_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STEPS else None


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_module_belongs_to_a_step() -> None:
    loose = [n for n in modules() if n not in ("samlora", "samlora.__main__") and step_of(n) is None]
    assert not loose, f"modules outside the flow's steps {STEPS}: {loose}"


def test_imports_run_one_way() -> None:
    wrong = []
    for name, targets in graph().items():
        src = step_of(name)
        if src is None:
            continue  # samlora/__init__ (the public API) and __main__ sit on top
        for target in targets:
            dst = step_of(target)
            if dst is None:
                wrong.append(f"{name} -> {target} (the public API module is for users)")
            elif STEPS.index(dst) > STEPS.index(src) and (src, dst) != ON_TOP:
                wrong.append(f"{name} ({src}) -> {target} ({dst})")
    assert not wrong, "imports that run up the flow:\n" + "\n".join(sorted(wrong))


def test_task_kinds_do_not_import_each_other() -> None:
    edges = graph()
    crossing = [
        f"{a} -> {b}"
        for a, targets in edges.items()
        for b in targets
        for x, y in (("promptable", "concept"), ("concept", "promptable"))
        if a.startswith(f"samlora.tasks.{x}") and b.startswith(f"samlora.tasks.{y}")
    ]
    assert not crossing, (
        "what both task kinds need lives in samlora.tasks (common, postprocess):\n" + "\n".join(crossing)
    )


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_prefixed_siblings_and_small_files() -> None:
    problems = []
    by_folder: dict[Path, set[str]] = defaultdict(set)
    for path in modules().values():
        by_folder[path.parent].add(path.stem)
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            problems.append(f"{path.relative_to(PACKAGE)}: {lines} lines (at most {MAX_LINES})")
    for folder, stems in by_folder.items():
        subfolders = {p.name for p in folder.iterdir() if p.is_dir()}
        for stem in stems:
            head = stem.split("_", 1)[0]
            if "_" in stem and not stem.startswith("__") and (head in stems or head in subfolders):
                problems.append(
                    f"{(folder / stem).relative_to(PACKAGE)}.py: prefixed by its sibling '{head}'"
                )
            if stem.startswith(folder.name + "_"):
                problems.append(f"{(folder / stem).relative_to(PACKAGE)}.py repeats its folder's name")
    assert not problems, "\n".join(problems)


if __name__ == "__main__":
    table: dict[tuple[str, str], int] = defaultdict(int)
    for name, targets in graph().items():
        for target in targets:
            table[(step_of(name) or name, step_of(target) or target)] += 1
    for (a, b), n in sorted(
        table.items(), key=lambda kv: (STEPS.index(kv[0][0]) if kv[0][0] in STEPS else 99, kv)
    ):
        print(f"{a:>10} -> {b:<10} {n}")
