"""The shape of the code: which module may import which (DESIGN.md's one-way dependencies)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The recipe layer and the command line may import data_prep; the library below them may not.
MAY_IMPORT_DATA_PREP = ("asr.cli", "asr.experiment")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every asr/data_prep module `path` imports, at module level or inside functions.
    `from a.b import c` counts as a.b.c when that is a module, else as a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known
                      else node.module for a in node.names}
    return {m for m in found if m.split(".")[0] in ("asr", "data_prep")}


def graph() -> dict[str, set[str]]:
    mods = modules("asr") | modules("data_prep")
    return {name: imports(path, set(mods)) for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_library_never_imports_data_prep():
    offenders = sorted(f"{m} imports {', '.join(sorted(i for i in deps if i.startswith('data_prep')))}"
                       for m, deps in graph().items()
                       if m.startswith("asr") and not m.startswith(MAY_IMPORT_DATA_PREP)
                       and any(i.startswith("data_prep") for i in deps))
    assert offenders == []


def test_data_prep_uses_only_the_lower_library():
    """data_prep builds on asr's audio, text and file helpers, never on training or models."""
    lower = {"asr", "asr.audio", "asr.audio_io", "asr.text", "asr.languages", "asr.fileio",
             "asr.prepare", "asr.tokenizer",
             "asr.workers", "asr.feature_cache", "asr.feature_writer", "asr.features",
             "asr.config", "asr.run_lock"}
    used = {i for m, deps in graph().items() if m.startswith("data_prep") for i in deps
            if i.startswith("asr")}
    assert used <= lower, sorted(used - lower)


def test_config_loads_without_torch():
    code = ("import sys, asr.config as c; c.load_run_config('default'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
