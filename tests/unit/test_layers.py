"""The package's layers point one way (the house style's item 11), and no modules import each
other in a loop. Read from the source with `ast`, so a new import is checked as it is written."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "seq2seq"


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, top_level_only: bool = False) -> set[str]:
    """What module `name` imports (absolute names: packages, and seq2seq's own modules where an
    imported name is a submodule). top_level_only: leave out imports inside functions, which
    load lazily and cannot form a loop at import time."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # `if TYPE_CHECKING:` and try/except blocks at the top level too
        nodes = [n for top in tree.body for n in ast.walk(top)
                 if not isinstance(top, (ast.FunctionDef, ast.ClassDef))]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if f"{node.module}.{a.name}" in MODULES)
    return found


def _uses(name: str, package: str) -> bool:
    return any(i == package or i.startswith(package + ".") for i in imports(name))


def _in(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_models_and_decoding_are_plain_pytorch():
    for name in MODULES:
        if _in(name, "seq2seq.models", "seq2seq.decoding"):
            for framework in ("lightning", "hydra", "omegaconf"):
                assert not _uses(name, framework), f"{name} imports {framework}"


def test_data_knows_no_models():
    for name in MODULES:
        if _in(name, "seq2seq.data"):
            for upper in ("seq2seq.models", "seq2seq.decoding", "seq2seq.module",
                          "seq2seq.pipeline"):
                assert not _uses(name, upper), f"{name} imports {upper}"


def test_only_the_training_side_knows_lightning():
    """The LightningModule, its callbacks, the datamodule, the pipeline, and the two Trainer
    plugins (checkpoint writing, CPU bf16 precision)."""
    allowed = ("seq2seq.module", "seq2seq.callbacks", "seq2seq.data.datamodule",
               "seq2seq.pipeline", "seq2seq.checkpoint", "seq2seq.precision")
    users = {n for n in MODULES if _uses(n, "lightning")}
    assert users, "the check reads no imports"
    assert all(_in(n, *allowed) for n in users), sorted(u for u in users if not _in(u, *allowed))


def test_only_the_pipeline_and_the_entry_points_know_hydra():
    users = {n for n in MODULES if _uses(n, "hydra")}
    assert users <= {"seq2seq.cli", "seq2seq.pipeline"}, sorted(users)


def test_the_runtime_imports_no_framework():
    for name in MODULES:
        if _in(name, "seq2seq.runtime"):
            for framework in ("torch", "lightning", "hydra", "omegaconf", "yaml"):
                assert not _uses(name, framework), f"{name} imports {framework}"
            for own in imports(name):
                if own.startswith("seq2seq.") and own in MODULES:
                    assert not _uses(own, "torch"), f"{name} imports {own}, which imports torch"


def test_no_modules_import_each_other_in_a_loop():
    graph = {n: {i for i in imports(n, top_level_only=True) if i in MODULES and i != n}
             for n in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                loop = path[path.index(m):] + [m]
                raise AssertionError("import loop: " + " -> ".join(loop))
            if m not in state:
                visit(m)
        path.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert sum(len(v) for v in graph.values()) > 50  # the graph was read
