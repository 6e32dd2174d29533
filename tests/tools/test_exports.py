"""The tools' modules: every name a module lists in ``__all__`` exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from lean_p2p import tools

# tools/ also holds a plain C shared library (liblean_p2p_producers.so), not a module
TOOL_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(tools.__path__, tools.__name__ + ".")
    if not info.name.rsplit(".", 1)[1].startswith("lib")
)


@pytest.mark.parametrize("name", TOOL_MODULES)
def test_every_module_lists_only_names_it_has(name: str) -> None:
    module = importlib.import_module(name)
    for exported in getattr(module, "__all__", ()):
        assert hasattr(module, exported), f"{name}.{exported}"


def test_the_package_docstring_names_every_tool() -> None:
    # The docstring is the map a newcomer reads: a tool missing from it is hidden.
    assert tools.__doc__ is not None
    top_level = {name.split(".")[2] for name in TOOL_MODULES}
    missing = [name for name in sorted(top_level) if f"``{name}" not in tools.__doc__]
    assert missing == []
