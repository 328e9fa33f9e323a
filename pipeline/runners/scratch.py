"""A run's temporary files in a directory of its own, removed when it ends.

Every Beam step of TFX (BaseBeamExecutor, given any beam_pipeline_args)
builds a source package of TFX itself for remote Beam workers into a new
temporary directory (tfx/utils/dependency_utils.py, 49 MB) and never removes
it; TensorFlow's autograph leaves its generated sources there too. Left in
/tmp, each local run of the pipeline would leave about half a gigabyte.
"""
import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Optional


@contextlib.contextmanager
def scratch_tempdir(prefix: str = "recsys-",
                    parent: Optional[str] = None) -> Iterator[str]:
  """Points `tempfile` and the TMPDIR of subprocesses started meanwhile
  (Beam's multi-processing workers) at a new directory under `parent`
  (default: the usual temp directory); restores both and removes the
  directory on exit."""
  directory = tempfile.mkdtemp(prefix=prefix, dir=parent)
  saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
  tempfile.tempdir = directory
  os.environ["TMPDIR"] = directory
  try:
    yield directory
  finally:
    tempfile.tempdir = saved_tempdir
    if saved_env is None:
      os.environ.pop("TMPDIR", None)
    else:
      os.environ["TMPDIR"] = saved_env
    shutil.rmtree(directory, ignore_errors=True)
