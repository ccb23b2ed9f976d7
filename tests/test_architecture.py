"""The rules of docs/architecture.md that code can check: docstrings and import direction."""

from __future__ import annotations

import ast

import pytest

from tests.support.project import REPO

PACKAGE = REPO / "newsletter"
# What each part of the package may import (besides itself and core), from docs/architecture.md.
ALLOWED = {
    "core": set(),
    "content": set(),
    "ingest": {"content"},
    "mail": {"content"},
    "archive": {"mail", "content"},
    "store": set(),
    "audience": {"store"},
    "delivery": {"store", "mail", "content"},
    "reports": {"delivery", "store", "mail", "content"},
    "web": {"audience", "delivery", "store", "mail", "content"},
    "cli": {"archive", "audience", "content", "delivery", "ingest", "mail", "reports", "store", "web"},
}
# Imports allowed against the arrows: none today (add one here only with its reason).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()
MODULES = sorted(PACKAGE.rglob("*.py"))


def part_of(module: str) -> str:
    """`newsletter.mail.render` -> "mail"; the top-level modules are "core"."""
    parts = module.split(".")
    # Any top-level module (newsletter/x.py, not a subpackage) is core.
    return "core" if len(parts) < 2 or not (PACKAGE / parts[1]).is_dir() else parts[1]


def module_name(path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def imported(tree: ast.Module) -> list[str]:
    """Every newsletter module the file imports, anywhere in it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("newsletter"):
            found += (
                [node.module] if node.module != "newsletter" else [f"newsletter.{a.name}" for a in node.names]
            )
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("newsletter.")]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_every_module_opens_with_a_docstring(path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and len(docstring) > 20, f"{module_name(path)}: no opening docstring saying what it owns"


def test_imports_run_one_way() -> None:
    upward = []
    for path in MODULES:
        here = part_of(module_name(path))
        for target in imported(ast.parse(path.read_text(encoding="utf-8"))):
            there = part_of(target)
            if there in (here, "core") or there in ALLOWED[here]:
                continue
            if (here, target) in KNOWN_EXCEPTIONS:
                continue
            upward.append(f"{module_name(path)} imports {target}")
    assert upward == []


def test_the_rule_checker_sees_an_upward_import() -> None:
    tree = ast.parse("from newsletter.web.app import create_app\nimport newsletter.delivery.loop\n")
    assert imported(tree) == ["newsletter.web.app", "newsletter.delivery.loop"]
    assert part_of("newsletter.web.app") not in ALLOWED["store"]
