"""A run's temporary files go to a directory of its own, removed at its end."""
import os
import subprocess
import sys
import tempfile

import pytest

from pipeline.runners.scratch import scratch_tempdir


def test_temporary_files_and_subprocesses_use_the_scratch_directory(tmp_path):
  outer = tempfile.gettempdir()
  outer_env = os.environ.get("TMPDIR")
  with scratch_tempdir(parent=str(tmp_path)) as scratch:
    assert os.path.dirname(scratch) == str(tmp_path)
    made = tempfile.mkdtemp()
    assert os.path.dirname(made) == scratch
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
        check=True, capture_output=True, text=True)
    assert child.stdout.strip() == scratch
  assert not os.path.exists(scratch)
  assert tempfile.gettempdir() == outer
  assert os.environ.get("TMPDIR") == outer_env
  assert os.listdir(tmp_path) == []


def test_the_scratch_directory_goes_when_the_run_fails(tmp_path):
  with pytest.raises(RuntimeError):
    with scratch_tempdir(parent=str(tmp_path)) as scratch:
      open(os.path.join(scratch, "half-written"), "w").close()
      raise RuntimeError("the run failed")
  assert os.listdir(tmp_path) == []
