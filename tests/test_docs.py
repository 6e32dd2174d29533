"""Documentation that names a test must name one that exists."""

from __future__ import annotations

import ast
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
