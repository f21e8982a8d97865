"""The layers import one way (docs/architecture.md): the world never imports the policies, the trainer or
the application layer; the policies never import the trainer or the application layer; the trainer never
imports the application layer (the episode loop is ``policies.rollout``); and there are no import cycles, function-level imports
included. Checked on the source (every ``import`` statement at any depth, type-only ones under
``if TYPE_CHECKING:`` included), so it cannot be fooled by what happens to be imported already."""

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("society_env", "policies", "qes_trainer")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def _imports(name: str, path: Path, source: str, modules: dict[str, Path]) -> set[str]:
    """The modules that module ``name`` (at ``path``, with text ``source``) imports: every ``import``
    statement at any depth, type-only ones under ``if TYPE_CHECKING:`` included (an import cycle hidden
    there is still a cycle of the design, and the first import at run time of such a name breaks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source, str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # "from package import module" imports the module; "from module import name" the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:  # "import a.b.c" of a non-module attribute
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in _imports(name, path, path.read_text(), modules))
    return graph


GRAPH = _import_graph()


def _layer(module: str) -> str:
    if module.startswith("society_env.app") or module == "society_env.__main__":  # python -m society_env
        return "app"
    return module.split(".")[0]


def _imports_of(layer: str) -> set[tuple[str, str]]:
    return {(source, target) for source, target in GRAPH.edges if _layer(source) == layer}


def test_the_graph_sees_the_known_imports():  # the checks below mean something only if this holds
    assert ("qes_trainer.fitness", "policies.rollout") in GRAPH.edges
    assert ("society_env.app.cli", "society_env.app.experiment") in GRAPH.edges
    assert ("policies.llm_policy", "policies.llm_engine") in GRAPH.edges
    assert ("society_env.env", "society_env.rules") in GRAPH.edges


@pytest.mark.parametrize("layer, forbidden", [
    ("society_env", {"policies", "qes_trainer", "app"}),
    ("policies", {"qes_trainer", "app"}),
])
def test_lower_layers_never_import_higher_ones(layer, forbidden):
    wrong = sorted((s, t) for s, t in _imports_of(layer) if _layer(t) in forbidden)
    assert not wrong, f"{layer} imports a higher layer: {wrong}"


def test_the_trainer_never_imports_the_application_layer():
    """The episode loop (policies.rollout) is below the app layer, so the trainer needs none of it."""
    wrong = sorted((s, t) for s, t in _imports_of("qes_trainer") if _layer(t) == "app")
    assert not wrong, wrong


def test_no_import_cycles():
    cycles = [cycle for cycle in nx.simple_cycles(GRAPH)]
    assert not cycles, cycles[:5]


def test_a_cycle_hidden_behind_type_checking_is_found():
    """The cycle ``artifacts`` once hid (``StepOutcome`` imported from ``rules`` under ``TYPE_CHECKING``,
    while ``rules`` imports ``artifacts``) is a cycle to this test."""
    modules = _modules()
    path = modules["society_env.artifacts"]
    hidden = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from society_env.rules import StepOutcome\n")
    graph = GRAPH.copy()
    graph.add_edges_from(("society_env.artifacts", target)
                         for target in _imports("society_env.artifacts", path, hidden, modules))
    assert ("society_env.artifacts", "society_env.rules") in graph.edges
    assert any(set(cycle) >= {"society_env.artifacts", "society_env.rules"} for cycle in nx.simple_cycles(graph))


def test_the_step_outcome_and_artifacts_are_data_below_the_rules():
    """``Artifact`` and ``StepOutcome`` live in ``society_env.outcome``, which imports no rule, state or
    artifact module (so ``state``, ``artifacts`` and ``rules`` all import it one way)."""
    below = nx.descendants(GRAPH, "society_env.outcome")
    assert not below & {"society_env.state", "society_env.artifacts", "society_env.rules", "society_env.env"}, below
    assert ("society_env.state", "society_env.outcome") in GRAPH.edges
    assert ("society_env.state", "society_env.artifacts") not in GRAPH.edges


def test_importing_the_world_loads_no_policy_trainer_or_app_module():
    code = ("import sys, society_env; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('policies', 'qes_trainer') or m.startswith('society_env.app')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert loaded.strip() == "[]"


def test_agent_names_are_spelled_in_one_module():
    """``agent_<slot>`` is formatted and parsed only by society_env.names (the glossary's slot/agent/name)."""
    from society_env.names import agent_name, agent_slot

    assert agent_slot(agent_name(41)) == 41
    with pytest.raises(ValueError, match="not an agent name"):
        agent_slot("agent_x")
    pattern = ('f"agent_{', 'rsplit("_", 1)')
    offenders = [str(path.relative_to(ROOT)) for path in _modules().values()
                 if path.name != "names.py" and any(p in path.read_text() for p in pattern)]
    assert not offenders, offenders
