"""Shared pytest setup: legacy Keras and quiet TensorFlow logs before
anything imports TensorFlow, and the pipeline runs the end-to-end tests
share.

Each run happens once per session (per xdist worker): every test that
takes one of these fixtures is marked `e2e` (`make test-fast` leaves them
out) and put in the fixture's xdist group, so that all the tests reading a
run go to one worker, which runs it once (`--dist loadgroup`).
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=wrong-import-position

# Pipeline-run fixture -> its xdist group. The Beam run shares the sample's
# group: tests compare the two, and each run must happen once.
PIPELINE_RUNS = {"sample_runs": "sample", "beam_run": "sample",
                 "aliccp_run": "aliccp"}


def pytest_collection_modifyitems(items):
  for item in items:
    groups = {group for name, group in PIPELINE_RUNS.items()
              if name in item.fixturenames}
    if groups:
      (group,) = groups
      item.add_marker(pytest.mark.e2e)
      item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def sample_runs(tmp_path_factory):
  """The embedded sample run, run again, and run on the other runner."""
  from tests.support import pipeline_runs  # pylint: disable=import-outside-toplevel
  return pipeline_runs.run_sample(str(tmp_path_factory.mktemp("sample")))


@pytest.fixture(scope="session")
def beam_run(tmp_path_factory):
  from tests.support import pipeline_runs  # pylint: disable=import-outside-toplevel
  return pipeline_runs.run_sample_on_beam(str(tmp_path_factory.mktemp("beam")))


@pytest.fixture(scope="session")
def aliccp_run(tmp_path_factory):
  from tests.support import pipeline_runs  # pylint: disable=import-outside-toplevel
  return pipeline_runs.run_aliccp_sample(
      str(tmp_path_factory.mktemp("aliccp")))
