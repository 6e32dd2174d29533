"""Folders are thread boundaries, and the library lies apart from the tools: check the
import graph keeps them so.

The loop-thread packages (runtime, consensus, p2p) and the any-thread packages (wire,
containers, net) must not import the trio/py-libp2p world: only the driver (its own
thread) and the node (the composition) do. That is also why an embedder who brings a
native networking stack pays nothing at run time for py-libp2p.

What an embedder imports (the library packages) never imports what a user runs
(``lean_p2p.tools``) or the command line (``lean_p2p.cli``); the tools never import the
command line; and no module imports itself through others. These are read from the
source (every import statement, a deferred one inside a function included), so a
tool imported lazily from a library function is caught too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import lean_p2p

INDEPENDENT_OF_THE_NETWORK_STACK = [
    "lean_p2p.runtime",
    "lean_p2p.crypto",
    "lean_p2p.native",
    "lean_p2p.wire",
    "lean_p2p.containers",
    "lean_p2p.net",
    "lean_p2p.consensus",
    "lean_p2p.p2p",
]
NETWORK_STACK_MODULES = ("libp2p", "trio", "aioquic")


@pytest.mark.parametrize("package", INDEPENDENT_OF_THE_NETWORK_STACK)
def test_package_does_not_import_the_network_stack(package: str) -> None:
    probe = (
        "import importlib, json, pkgutil, sys\n"
        f"package = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        # native/ holds plain C shared libraries (lib*.so), which look like modules
        "    if not info.name.rsplit('.', 1)[1].startswith('lib'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{NETWORK_STACK_MODULES!r})))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(completed.stdout) == []


LIBRARY_PACKAGES = (
    "runtime",
    "crypto",
    "native",
    "wire",
    "containers",
    "consensus",
    "net",
    "driver",
    "p2p",
    "node",
)
PACKAGE_ROOT = Path(lean_p2p.__file__).parent


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = ["lean_p2p", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imported(path: Path) -> Iterator[str]:
    """The lean_p2p modules (or packages) ``path`` imports, at any depth of its code."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    yield submodule
                elif node.module in MODULES:
                    yield node.module


IMPORTS = {name: set(_imported(path)) for name, path in MODULES.items()}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_is_library_tools_or_cli() -> None:
    areas = {_area(name) for name in MODULES} - {""}
    assert areas == {*LIBRARY_PACKAGES, "tools", "cli"}


@pytest.mark.parametrize("package", LIBRARY_PACKAGES)
def test_library_package_imports_neither_tools_nor_cli(package: str) -> None:
    reaching_out = sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if _area(module) == package
        for target in targets
        if _area(target) in {"tools", "cli"}
    )
    assert reaching_out == []


#: package -> the other library packages it may import. Together a stack: the pure
#: values at the bottom, the loop-side and driver-side packages above them, the node
#: on top. An edge not listed here is a layer reaching sideways or up.
MAY_IMPORT: dict[str, set[str]] = {
    "containers": set(),
    "runtime": set(),
    "crypto": {"containers"},
    "net": {"containers"},
    "wire": {"containers", "net"},
    "consensus": {"containers", "crypto", "runtime"},
    "native": {"net", "runtime"},
    "p2p": {"containers", "net", "runtime"},
    "driver": {"containers", "net", "wire"},
    "node": {
        "consensus",
        "containers",
        "crypto",
        "driver",
        "native",
        "net",
        "p2p",
        "runtime",
        "wire",
    },
}


@pytest.mark.parametrize("package", LIBRARY_PACKAGES)
def test_library_package_imports_only_the_layers_below_it(package: str) -> None:
    unexpected = sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if _area(module) == package
        for target in targets
        if _area(target) in LIBRARY_PACKAGES
        and _area(target) != package
        and _area(target) not in MAY_IMPORT[package]
    )
    assert unexpected == []


def test_tools_do_not_import_the_command_line() -> None:
    reaching_out = sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if _area(module) == "tools"
        for target in targets
        if _area(target) == "cli"
    )
    assert reaching_out == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a self-import)."""
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = lowest[module] = len(order)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in order:
                visit(target)
                lowest[module] = min(lowest[module], lowest[target])
            elif target in on_stack:
                lowest[module] = min(lowest[module], order[target])
        if lowest[module] == order[module]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph[module]:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(IMPORTS) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above would pass vacuously if the finder saw nothing.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["e"]]


def test_the_import_reader_sees_deferred_imports() -> None:
    # lean_p2p.cli loads its command modules inside functions; the reader must see them.
    assert "lean_p2p" in IMPORTS["lean_p2p.cli"]
