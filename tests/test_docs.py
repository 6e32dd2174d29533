"""Documentation that names a test must name one that exists."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_REFERENCE = re.compile(r"`?(tests/[\w/]+\.py)::(\w+)")


def _references() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for path, name in TEST_REFERENCE.findall(page.read_text()):
            found.append((page.name, path, name))
    return found


def _defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_docs_name_tests() -> None:
    assert _references(), "docs/architecture.md maps failure modes to tests"


@pytest.mark.parametrize(("page", "path", "name"), _references())
def test_named_test_exists(page: str, path: str, name: str) -> None:
    test_file = ROOT / path
    assert test_file.is_file(), f"{page} names {path}, which does not exist"
    assert name in _defined_names(test_file), f"{page} names {path}::{name}, not defined"


PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _python_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for match in PYTHON_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((page.name, line, match.group(1)))
    return found


def _unbound_names(tree: ast.Module) -> set[str]:
    """Names a whole program reads but never binds (nor gets from builtins)."""
    bound = set(dir(builtins))
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return read - bound


@pytest.mark.parametrize(
    ("page", "line", "code"), _python_blocks(), ids=lambda value: str(value)[:20]
)
def test_python_in_the_docs_is_valid_as_written(page: str, line: int, code: str) -> None:
    # A fragment may lean on names the prose introduces; it must still be Python (no
    # await or async with outside a function). A whole program (one that calls
    # asyncio.run) must also bind every name it reads.
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        pytest.fail(f"{page}:{line + (error.lineno or 0)}: {error.msg}")
    if "asyncio.run(" in code:
        assert _unbound_names(tree) == set(), f"{page}:{line} reads names it never binds"


def test_the_docs_have_whole_programs_to_check() -> None:
    assert any("asyncio.run(" in code for _page, _line, code in _python_blocks())
