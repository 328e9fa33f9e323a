"""A run killed midway (kill -9: no handler runs) shows in `recsys runs` as
interrupted in the step it stopped in, and the next run resumes from
TFX's cache."""
import os
import signal
import subprocess
import sys

import pytest

from pipeline import PROJECT_ROOT
from pipeline.config import load_config
from pipeline.results import runs

BEFORE_TRAINER = ["ImportSchemaGen", "MovieLensExampleGen", "StatisticsGen",
                  "ExampleValidator", "Sessionize", "Transform"]


@pytest.mark.e2e
def test_a_killed_run_shows_as_interrupted_and_the_next_resumes(tmp_path):
  out = tmp_path / "out"
  command = [sys.executable, "-m", "pipeline.cli", "run", "--output-dir",
             str(out), "--set", "ranking.enabled=false", "--set",
             "ranker.enabled=false", "--set",
             "train.epochs=2"]
  child = subprocess.Popen(command, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           cwd=PROJECT_ROOT)
  printed = []
  for line in child.stdout:
    printed.append(line)
    if line.startswith("Epoch 1/"):  # training, its execution registered
      break
  child.send_signal(signal.SIGKILL)
  child.wait(timeout=60)
  assert child.returncode == -signal.SIGKILL, "".join(printed)

  config = load_config(values={"output_dir": str(out)})
  (killed,) = runs.list_runs(config)
  assert killed["status"] == "interrupted in Trainer"
  assert "interrupted in Trainer" in runs.format_runs([killed])
  assert os.path.exists(config.running_path)  # left by the killed process

  resumed = subprocess.run(command, capture_output=True, text=True,
                           cwd=PROJECT_ROOT, timeout=900)
  assert resumed.returncode == 0, resumed.stderr
  for name in BEFORE_TRAINER:
    assert f"[recsys] {name}: cached" in resumed.stdout, name
  killed, done = runs.list_runs(config)
  assert (killed["status"], done["status"]) == (
      "interrupted in Trainer", "complete")
  assert done["pushed"]
  assert not os.path.exists(config.running_path)
