"""The `recsys` command line: help, config errors, and data errors."""
import os
import subprocess
import sys

from components.lib import settings
from pipeline import PROJECT_ROOT
from pipeline.cli import main as cli
from pipeline.config import RunConfig, help_text

RECSYS = [sys.executable, "-m", "pipeline.cli"]
ROOT = PROJECT_ROOT


def run(*args, **kwargs):
  return subprocess.run(RECSYS + list(args), capture_output=True, text=True,
                        cwd=ROOT, timeout=120, **kwargs)


def test_help_explains_every_command_and_option():
  top = run("--help")
  assert top.returncode == 0
  for command in ("run", "recommend", "infer-schema", "config"):
    assert command in top.stdout
  run_help = run("run", "--help").stdout
  for option in ("--data-dir", "--output-dir", "--config", "--set"):
    assert option in run_help
  # Every setting, its default and its help, as the one definition says.
  assert help_text() in run_help.replace("\r", "")
  for name, _, _ in settings.describe(RunConfig()):
    assert f"  {name}  (default " in run_help, name
  assert "--history" in run("recommend", "--help").stdout


def test_bad_setting_is_a_clear_error(tmp_path):
  result = run("run", "--output-dir", str(tmp_path), "--set", "train.epochz=1")
  assert result.returncode == 2
  assert "recsys: error: train.epochz: unknown setting" in result.stderr
  assert not os.listdir(tmp_path)


def test_config_prints_the_resolved_settings(tmp_path):
  result = run("config", "--output-dir", str(tmp_path), "--set",
               "serving.top_k=7")
  assert result.returncode == 0
  assert '"top_k": 7' in result.stdout


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
  code = cli.main(["run", "--data-dir", str(tmp_path / "nope"),
                   "--output-dir", str(tmp_path / "out")])
  assert code == 1
  assert f"data directory not found: {tmp_path / 'nope'}" in capsys.readouterr().err


def test_debug_adds_the_traceback_to_an_input_error(tmp_path, capsys):
  args = ["run", "--data-dir", str(tmp_path / "nope"), "--output-dir",
          str(tmp_path / "out")]
  assert cli.main(args) == cli.EXIT_INPUT_ERROR
  assert "Traceback" not in capsys.readouterr().err
  assert cli.main(["--debug"] + args) == cli.EXIT_INPUT_ERROR
  err = capsys.readouterr().err
  assert "Traceback (most recent call last)" in err
  assert "IngestionError: data directory not found" in err
  assert err.rstrip().endswith(
      f"recsys: error: data directory not found: {tmp_path / 'nope'}")


def test_recommend_without_a_pushed_model(tmp_path):
  result = run("recommend", "--model", str(tmp_path), "--history", "1,2")
  assert result.returncode == 2
  assert f"no pushed model (model.tflite) in {tmp_path}" in result.stderr


def test_runs_without_a_metadata_store(tmp_path):
  result = run("runs", "--output-dir", str(tmp_path))
  assert result.returncode == 2
  assert (f"no metadata store at {tmp_path / 'metadata.sqlite'}: no pipeline "
          "has run with this output directory") in result.stderr
