"""Defaults that fit the data: each rule, what a user gives is kept, and the
record a run carries."""
import json
import subprocess
import sys

import pytest

from pipeline import PROJECT_ROOT
from pipeline import adaptive
from pipeline.config import ConfigError, from_json, given_settings, load_config
from pipeline.profile import DataProfile
from tests.support.pipeline_runs import SAMPLE


def shape(users=3000, items=3600, p80=243):
  return DataProfile(users=users, items=items, interactions=users * 100,
                     history_quantiles={50: p80 // 2, 80: p80, 90: 2 * p80})


@pytest.mark.parametrize("p80, length", [
    (243, 200), (200, 200), (150, 150), (141, 150), (42, 50), (3, 10)])
def test_context_length_follows_the_long_histories(p80, length):
  config = adaptive.adapt(load_config(), set(), shape(p80=p80))
  assert config.session.max_context_length == length
  assert f"p80 of the train histories: {p80} items" in config.adapted[
      "session.max_context_length"]


@pytest.mark.parametrize("length, batch", [
    (200, 16), (150, 24), (100, 32), (60, 56), (50, 64), (10, 64)])
def test_batches_hold_the_same_items_at_every_context_length(length, batch):
  adapted = adaptive.adapt(load_config(), set(), shape(p80=length))
  assert adapted.train.batch_size == batch
  # A context length the user gives sets the batch as well.
  given_length = adaptive.adapt(
      load_config(overrides=[f"session.max_context_length={length}"]),
      {"session.max_context_length"}, shape(p80=3))
  assert given_length.train.batch_size == batch
  kept = adaptive.adapt(load_config(overrides=["train.batch_size=8"]),
                        {"train.batch_size"}, shape(p80=length))
  assert kept.train.batch_size == 8


@pytest.mark.parametrize("items, loss", [
    (3600, "softmax"), (adaptive.SAMPLED_SOFTMAX_ITEMS, "softmax"),
    (adaptive.SAMPLED_SOFTMAX_ITEMS + 1, "sampled_softmax"),
    (200_000, "sampled_softmax")])
def test_large_catalogs_get_the_sampled_softmax(items, loss):
  assert adaptive.adapt(load_config(), set(),
                        shape(items=items)).train.loss == loss


def test_few_eval_users_get_more_patience():
  default = load_config().train.patience
  assert adaptive.adapt(load_config(), set(), shape(users=600)
                        ).train.patience == adaptive.SMALL_EVAL_PATIENCE
  kept = adaptive.adapt(load_config(), set(), shape(users=3000))
  assert kept.train.patience == default
  assert kept.adapted["train.patience"] == "5 (3,000 eval users: the default)"


def test_given_settings_are_never_adapted(tmp_path):
  path = tmp_path / "run.yaml"
  path.write_text("session: {max_context_length: 30}\n")
  overrides = ["train.loss=sampled_softmax"]
  config = load_config(str(path), overrides)
  given = given_settings(str(path), overrides)
  assert {"session.max_context_length", "train.loss"} <= given
  adapted = adaptive.adapt(config, given, shape(items=100, users=100))
  assert adapted.session.max_context_length == 30
  assert adapted.train.loss == "sampled_softmax"
  assert adapted.train.patience == adaptive.SMALL_EVAL_PATIENCE
  assert set(adapted.adapted) == {"data", "train.batch_size", "train.patience"}
  assert adapted.train.batch_size == 64  # from the given context of 30
  # adapt=false: nothing changes, nothing is recorded.
  off = load_config(overrides=["adapt=false"])
  assert adaptive.adapt(off, {"adapt"}, shape(users=100)) == off


def test_the_record_travels_with_the_config_but_is_not_a_setting():
  config = adaptive.adapt(load_config(), set(), shape())
  recorded = json.loads(config.to_json())["adapted"]
  assert recorded == config.adapted and "data" in recorded
  assert from_json(config.to_json()) == config
  with pytest.raises(ConfigError, match="^adapted: recorded by a run"):
    load_config(overrides=["adapted.x=1"])
  lines = adaptive.describe(config)
  assert lines[0].startswith("adapted to the data (3,000 users")
  assert any(line.startswith("  session.max_context_length = 200 ")
             for line in lines)


def test_recsys_config_shows_the_adapted_settings(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "pipeline.cli", "config", "--data-dir", SAMPLE,
       "--output-dir", str(tmp_path), "--set", "train.loss=softmax",
       "--set", "profile=quality"],
      capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120,
      check=True)
  config = json.loads(result.stdout)
  # The sample: 600 users, p80 of the train histories 150.
  assert config["session"]["max_context_length"] == 150
  assert config["train"]["patience"] == adaptive.SMALL_EVAL_PATIENCE
  assert "train.loss" not in config["adapted"]
