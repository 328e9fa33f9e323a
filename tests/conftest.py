"""Shared pytest setup: legacy Keras and quiet TensorFlow logs before
anything imports TensorFlow, and the pipeline runs the end-to-end tests
share.

Tests that share a costly fixture (module or session scope: a pipeline
run, a trained model, a Transform run) go to one xdist worker, so that the
fixture is built once (`--dist loadgroup`). Every test that takes a
pipeline run is marked `e2e`; `make test-fast` leaves them out.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=wrong-import-position

PIPELINE_RUNS = ("sample_runs", "beam_run", "aliccp_run")
# Session fixtures every test takes; they group nothing.
EVERY_TEST = ("temporary_files_in_basetemp",)


def _shared_fixtures(item):
  """Keys of this project's module- and session-scoped fixtures the test
  takes (a module fixture is one per module)."""
  keys = []
  for name in item.fixturenames:
    if name in EVERY_TEST:
      continue
    definitions = item._fixtureinfo.name2fixturedefs.get(name)  # pylint: disable=protected-access
    if not definitions:
      continue
    definition = definitions[-1]
    if (definition.scope not in ("module", "session")
        or not definition.func.__module__.startswith("tests.")):
      continue
    keys.append(name if definition.scope == "session"
                else f"{item.module.__name__}.{name}")
  return keys


# Before xdist's own hook, which reads the group markers (pytest-xdist 3.8;
# pytest 9 renamed the node id attribute it sets, hence pytest 8 in
# constraints.txt).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
  # Fixtures taken by one test are joined into one group (union-find).
  parent = {}

  def root(key):
    while parent.setdefault(key, key) != key:
      key = parent[key]
    return key

  shared = {item: _shared_fixtures(item) for item in items}
  for keys in shared.values():
    for key in keys[1:]:
      parent[root(key)] = root(keys[0])
  for item, keys in shared.items():
    if keys:
      item.add_marker(pytest.mark.xdist_group(root(keys[0])))
    if any(name in item.fixturenames for name in PIPELINE_RUNS):
      item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def temporary_files_in_basetemp(tmp_path_factory):
  """The code under test writes its temporary files under this worker's
  pytest base directory (pytest keeps the last three sessions), never in
  /tmp: a test that runs a TFX Beam step directly leaves a 49 MB build of
  TFX in a fresh temp directory (runners/scratch.py)."""
  from pipeline.runners.scratch import scratch_tempdir  # pylint: disable=import-outside-toplevel
  with scratch_tempdir(prefix="tmp-", parent=str(
      tmp_path_factory.getbasetemp())) as directory:
    yield directory


def _output_dir(tmp_path_factory, name: str) -> str:
  """A fresh directory for one pipeline run; fails when another xdist
  worker of this session already made one, i.e. when the grouping above
  stopped working and the run would happen twice."""
  if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each worker's base directory sits in one directory per session.
    claim = tmp_path_factory.getbasetemp().parent / f"{name}.run"
    try:
      claim.touch(exist_ok=False)
    except FileExistsError:
      pytest.fail(f"the {name} pipeline run was started by two workers: "
                  "its tests are not in one xdist group")
  return str(tmp_path_factory.mktemp(name))


@pytest.fixture(scope="session")
def sample_runs(tmp_path_factory):
  """The embedded sample run, run again, and run on the other runner."""
  from tests.support import pipeline_runs  # pylint: disable=import-outside-toplevel
  return pipeline_runs.run_sample(_output_dir(tmp_path_factory, "sample"))


@pytest.fixture(scope="session")
def beam_run(tmp_path_factory):
  from tests.support import pipeline_runs  # pylint: disable=import-outside-toplevel
  return pipeline_runs.run_sample_on_beam(_output_dir(tmp_path_factory, "beam"))


@pytest.fixture(scope="session")
def aliccp_run(tmp_path_factory):
  from tests.support import pipeline_runs  # pylint: disable=import-outside-toplevel
  return pipeline_runs.run_aliccp_sample(_output_dir(tmp_path_factory, "aliccp"))
