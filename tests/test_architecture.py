"""docs/ARCHITECTURE.md's package table is the package: every module listed exists, every module
is listed, and the import graph follows the table's layers (no cycles, nothing imports a layer
listed above it)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from tierhouse.settings import PROJECT_ROOT

PACKAGE_ROOT = PROJECT_ROOT / "plugins" / "tierhouse"
ARCHITECTURE = PROJECT_ROOT / "docs" / "ARCHITECTURE.md"
_ROW = re.compile(r"^\|\s*`tierhouse(?:\.(?P<package>[a-z_]+))?`\s*\|(?P<modules>[^|]*)\|")
FILE_SUFFIXES = {"yml", "yaml", "toml", "json", "md", "csv", "py", "log"}
_MODULE = re.compile(r"`([a-z_]+)(?:\.py)?`")


def package_table() -> list[tuple[str, list[str]]]:
    """(package, modules) per row of the "Packages" table, top row first; "" is the flat top level."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("\n## Packages", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            rows.append((match.group("package") or "", _MODULE.findall(match.group("modules"))))
    return rows


def module_files() -> dict[str, Path]:
    """Dotted module name below tierhouse -> file, for every module of the package."""
    modules = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        relative = path.relative_to(PACKAGE_ROOT).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        modules[".".join(parts)] = path
    return modules


def layer_of(module: str, layers: dict[str, int]) -> int:
    package = module.split(".")[0] if "." in module or module in layers else ""
    return layers.get(package, layers[""])


def imports_of(path: Path, known: set[str]) -> set[str]:
    """tierhouse modules a file imports, at module level or inside functions (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("tierhouse."):
                dotted = name.removeprefix("tierhouse.")
                while dotted and dotted not in known:
                    dotted = dotted.rpartition(".")[0]
                if dotted:
                    found.add(dotted)
    return found


def test_every_listed_module_exists_and_every_module_is_listed() -> None:
    table = package_table()
    assert table, "docs/ARCHITECTURE.md has no '## Packages' table"
    listed = set()
    for package, modules in table:
        folder = PACKAGE_ROOT / package
        assert folder.is_dir(), f"docs/ARCHITECTURE.md lists tierhouse.{package}, which does not exist"
        assert (folder / "__init__.py").exists(), f"tierhouse.{package} is not a package"
        for module in modules:
            assert (folder / f"{module}.py").exists(), (
                f"docs/ARCHITECTURE.md lists {package or 'tierhouse'}/{module}.py, which does not exist"
            )
            listed.add(f"{package}.{module}" if package else module)
    actual = {name for name in module_files() if name and not (PACKAGE_ROOT / name.replace(".", "/")).is_dir()}
    assert sorted(actual - listed) == [], "modules missing from the package table in docs/ARCHITECTURE.md"
    packages = {path.parent.name for path in PACKAGE_ROOT.glob("*/__init__.py")}
    assert packages == {package for package, _ in table if package}, "subpackages and table rows differ"


def test_no_package_imports_a_layer_listed_above_it() -> None:
    table = package_table()
    # The table lists the top layer first: row 0 may import everything below it.
    layers = {package: len(table) - index for index, (package, _) in enumerate(table)}
    modules = module_files()
    violations = []
    for module, path in sorted(modules.items()):
        if not module:
            continue
        mine = layer_of(module, layers)
        for target in sorted(imports_of(path, set(modules))):
            if layer_of(target, layers) > mine:
                violations.append(f"tierhouse.{module} imports tierhouse.{target}, a layer above it")
    assert violations == []


def test_the_import_graph_has_no_cycles() -> None:
    modules = module_files()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        if module:
            graph[module] = {target for target in imports_of(path, set(modules)) if target and target != module}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("doc", ["docs/ARCHITECTURE.md", "CONTRIBUTING.md", "README.md"])
def test_docs_name_only_modules_that_exist(doc: str) -> None:
    """`plugins/tierhouse/...py` paths and `tierhouse.x.y` module names in the docs resolve."""
    text = (PROJECT_ROOT / doc).read_text(encoding="utf-8")
    modules = module_files()
    missing = [p for p in re.findall(r"plugins/tierhouse/[\w/]+\.py", text) if not (PROJECT_ROOT / p).exists()]
    for name in re.findall(r"\btierhouse\.([a-z_]+(?:\.[a-z_]+)*)", text):
        if name.split(".")[0] in FILE_SUFFIXES:  # a file such as tierhouse.yml, not a module
            continue
        candidate = name
        while candidate and candidate not in modules:
            candidate = candidate.rpartition(".")[0]
        if not candidate:
            missing.append(f"tierhouse.{name}")
    assert missing == []
