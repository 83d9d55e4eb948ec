"""The layers as rules (AST scan of every import, top-level or inside a function):

- core/ (the shared core) imports neither the bot's service, nor Discord, nor the trainer;
- trainer/ imports only the core: never bot/ (service or Discord front end) nor discord.py;
- bot/service/ never imports the Discord front end or discord.py;
- no import cycle among the project's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.paths import PROJECT_ROOT

PACKAGES = ("core", "bot", "trainer")


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from core import registry`
    return found


def project_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (PROJECT_ROOT / package).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        graph[name] = {target for target in imports_of(path) if target in modules and target != name}
    return graph, {name: imports_of(path) for name, path in modules.items()}


GRAPH, ALL_IMPORTS = project_graph()


def violations(source_prefix: str, forbidden: tuple[str, ...], imports: dict[str, set[str]] = ALL_IMPORTS) -> list[str]:
    return sorted(f"{module} imports {target}" for module, targets in imports.items()
                  if module == source_prefix or module.startswith(source_prefix + ".")
                  for target in targets if any(target == f or target.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("layer, forbidden", [
    ("core", ("bot", "trainer", "discord")),
    ("trainer", ("bot", "discord")),
    ("bot.service", ("bot.discord_front", "discord")),
])
def test_layers_import_only_downwards(layer, forbidden):
    assert violations(layer, forbidden) == []


def test_the_rules_see_a_violation(tmp_path):
    """Negative control: an import of the service hidden inside a function of the core is caught."""
    module = tmp_path / "fake.py"
    module.write_text("import json\n\ndef later():\n    from bot.service.worker import ModelWorker\n")
    assert violations("core", ("bot",), {"core.fake": imports_of(module)}) == [
        "core.fake imports bot.service.worker", "core.fake imports bot.service.worker.ModelWorker"]
    assert "trainer.train" in GRAPH["trainer.cli.train"]  # the real scan counts imports inside functions too


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
