"""The package layout README's "Where the code is" describes: imports go one
way (function-level imports included), so a folder's role holds."""
import ast
import os
from typing import Dict, List, Set

from pipeline import PROJECT_ROOT

PACKAGES = ("components", "pipeline")


def _modules() -> Dict[str, str]:
  """{dotted module name: file} of the project's packages."""
  found = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(PROJECT_ROOT, package)):
      for name in files:
        if not name.endswith(".py"):
          continue
        path = os.path.join(folder, name)
        module = os.path.relpath(path, PROJECT_ROOT)[:-3].replace(os.sep, ".")
        found[module.removesuffix(".__init__")] = path
  return found


def _imports(module: str, path: str, known: Set[str]) -> Set[str]:
  """The project modules `module` imports anywhere in its file."""
  package = module if path.endswith("__init__.py") else module.rpartition(
      ".")[0]
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  names: List[str] = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
      names += [base] + [f"{base}.{alias.name}" for alias in node.names]
  return {name for name in names if name in known and name != module}


def _graph() -> Dict[str, Set[str]]:
  modules = _modules()
  return {module: _imports(module, path, set(modules))
          for module, path in modules.items()}


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """Strongly connected groups of more than one module (Tarjan)."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  found: List[List[str]] = []

  def visit(node: str) -> None:
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for after in graph[node]:
      if after not in index:
        visit(after)
        low[node] = min(low[node], low[after])
      elif after in on_stack:
        low[node] = min(low[node], index[after])
    if low[node] == index[node]:
      group = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        group.append(member)
        if member == node:
          break
      if len(group) > 1:
        found.append(sorted(group))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_the_graph_sees_function_level_and_relative_imports():
  graph = _graph()
  # A function-level import: the runner loads the DAG only when it runs.
  assert "pipeline.dag.pipeline" in graph["pipeline.runners.local"]
  assert "components.lib.settings" in graph["pipeline.config"]
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
      ["a", "b", "c"]]


def test_no_module_imports_one_that_imports_it_back():
  assert _cycles(_graph()) == []


def test_steps_never_import_the_shell_side():
  """components/ runs inside TFX steps (and the Kubeflow image's executors):
  it must not need pipeline/; components/lib/ needs nothing but itself."""
  for module, imported in _graph().items():
    if module.startswith("components."):
      assert not {m for m in imported if m.startswith("pipeline")}, module
    if module.startswith("components.lib"):
      assert {m for m in imported if not m.startswith("components.lib")} == (
          set()), module


def test_results_read_the_store_without_the_runners():
  """Runners summarize a run with results/; results/ never runs anything."""
  for module, imported in _graph().items():
    if module.startswith("pipeline.results"):
      assert not {m for m in imported
                  if m.startswith("pipeline.runners")}, module
