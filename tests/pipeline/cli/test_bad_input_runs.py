"""Bad input through a whole `recsys run`, as a user meets it: one
`recsys: error:` message naming file, line and value, exit code 1, no
traceback, the ingestion report kept, and nothing trained or pushed. (The
other bad-input cases run through the ingestion executor alone:
tests/components/example_gen/test_bad_input.py.)"""
import os
import shutil
import subprocess
import sys

import pytest

from pipeline import PROJECT_ROOT
from pipeline.cli.main import EXIT_INPUT_ERROR

SAMPLE = os.path.join(PROJECT_ROOT, "data", "sample")


def _recsys_run(data_dir, output_dir):
  # As from a user's shell that lets TensorFlow's errors through (its CUDA
  # plugins' "Unable to register" lines are errors).
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  return subprocess.run(
      [sys.executable, "-m", "pipeline.cli", "run", "--data-dir",
       str(data_dir), "--output-dir", str(output_dir), "--set",
       "ranking.enabled=false"],
      capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900, env=env)


def _nothing_trained_or_pushed(output_dir) -> None:
  assert not os.path.exists(os.path.join(output_dir, "serving"))
  root = os.path.join(output_dir, "pipeline_root")
  assert not os.path.exists(os.path.join(root, "Trainer"))


def _copy_sample(tmp_path):
  data = tmp_path / "data"
  shutil.copytree(SAMPLE, data)
  return data


@pytest.mark.e2e
def test_a_rating_outside_the_schema_stops_the_run_at_ingestion(tmp_path):
  data = _copy_sample(tmp_path)
  ratings = data / "ratings.dat"
  lines = ratings.read_bytes().split(b"\n")
  user, item, _, timestamp = lines[9].split(b"::")
  lines[9] = b"::".join((user, item, b"9", timestamp))
  ratings.write_bytes(b"\n".join(lines))

  result = _recsys_run(data, tmp_path / "out")

  assert result.returncode == EXIT_INPUT_ERROR, result.stderr
  # The message alone: no traceback, no "Execution 2 failed." before it.
  assert result.stderr.startswith("recsys: error: 1 malformed line(s)"), (
      result.stderr)
  assert f"{ratings}:10: rating 9 is above 5" in result.stderr
  kept = tmp_path / "out" / "reports" / "ingestion_report.json"
  assert f"the full report: {kept}" in result.stderr
  assert kept.exists()
  _nothing_trained_or_pushed(tmp_path / "out")


@pytest.mark.e2e
def test_no_user_with_three_interactions_is_an_error_not_a_traceback(
    tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  shutil.copy(os.path.join(SAMPLE, "movies.dat"), data)
  shutil.copy(os.path.join(SAMPLE, "users.dat"), data)
  # Two ratings per user.
  kept, seen = [], {}
  for line in open(os.path.join(SAMPLE, "ratings.dat"), encoding="latin-1"):
    user = line.split("::", 1)[0]
    if seen.get(user, 0) < 2:
      seen[user] = seen.get(user, 0) + 1
      kept.append(line)
  (data / "ratings.dat").write_text("".join(kept), encoding="latin-1")

  result = _recsys_run(data, tmp_path / "out")

  assert result.returncode == EXIT_INPUT_ERROR, result.stderr
  assert "Traceback" not in result.stderr
  assert "recsys: error: no user has at least 3 interactions" in result.stderr
  _nothing_trained_or_pushed(tmp_path / "out")
