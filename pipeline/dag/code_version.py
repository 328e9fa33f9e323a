"""Digests of the project code a component runs, for TFX's cache.

TFX reuses a cached execution when a component's inputs and parameters are
unchanged; it does not see changes to this project's code. Each component
that runs project code gets the digest of its module and of every project
module it imports (transitively), so that editing the sessionizer re-runs
Sessionize and what follows, but not ingestion.
"""
import ast
import hashlib
import os
from typing import Set

from pipeline import PROJECT_ROOT

PACKAGES = ("components",)


def _path(module: str) -> str:
  base = os.path.join(PROJECT_ROOT, *module.split("."))
  return base + ".py" if os.path.exists(base + ".py") else os.path.join(
      base, "__init__.py")


def _project_imports(path: str) -> Set[str]:
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  found = set()
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    for name in names:
      if name.split(".")[0] in PACKAGES and os.path.exists(_path(name)):
        found.add(name)
  return found


def code_version(module: str) -> str:
  """sha256 (12 hex digits) over `module` and the project modules it imports."""
  seen, todo = set(), [module]
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    parts = name.split(".")
    # A module's packages run their __init__ too.
    todo += [".".join(parts[:i]) for i in range(1, len(parts))]
    todo += sorted(_project_imports(_path(name)))
  digest = hashlib.sha256()
  for name in sorted(seen):
    digest.update(name.encode())
    with open(_path(name), "rb") as f:
      digest.update(f.read())
  return digest.hexdigest()[:12]
