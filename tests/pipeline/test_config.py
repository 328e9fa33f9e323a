"""RunConfig: files, --set overrides, validation naming the field."""
import json
import os

import pytest

from components.lib import settings
from pipeline import PROJECT_ROOT
from pipeline.config import (ConfigError, RunConfig, from_json, given_settings,
                             load_config,
                             parse_overrides)

README_TABLE_START = "<!-- settings: generated from the definitions -->"
README_TABLE_END = "<!-- /settings -->"


def settings_table() -> str:
  """README's settings table, from the definitions of every setting."""
  rows = ["| setting | default | what it does |", "|---|---|---|"]
  for name, default, text in settings.describe(RunConfig()):
    shown = settings.format_value(default)
    if default not in (None, ""):
      shown = f"`{shown}`"
    rows.append(f"| `{name}` | {shown} | {text} |")
  return "\n".join(rows) + "\n"


def test_defaults_are_valid_and_paths_absolute(tmp_path):
  config = load_config(values={"output_dir": str(tmp_path / "out")})
  assert os.path.isabs(config.data.data_dir)
  assert config.serving_dir == str(tmp_path / "out" / "serving")
  assert config.metadata_path.startswith(str(tmp_path / "out"))


def test_file_then_overrides_then_values(tmp_path):
  path = tmp_path / "run.yaml"
  path.write_text("model:\n  rnn_units: 32\ntrain:\n  epochs: 2\n")
  config = load_config(str(path), ["train.epochs=7", "session.min_rating=4"],
                       {"output_dir": str(tmp_path)})
  assert config.model.rnn_units == 32
  assert config.train.epochs == 7
  assert config.session.min_rating == 4.0 and isinstance(
      config.session.min_rating, float)
  assert config.output_dir == str(tmp_path)


def test_round_trip_through_json(tmp_path):
  config = load_config(overrides=["train.seed=3", "beam_args=--a=1,--b=2"],
                       values={"output_dir": str(tmp_path)})
  assert config.beam_args == ["--a=1", "--b=2"]
  again = from_json(config.to_json())
  assert again == config
  assert again.digest() == config.digest()
  assert load_config(values={"output_dir": str(tmp_path)}).digest() != (
      config.digest())


@pytest.mark.parametrize("override, field", [
    ("train.epochz=3", "train.epochz"),
    ("model.encoder=transformer9", "model.encoder"),
    ("train.epochs=zero", "train.epochs"),
    ("train.epochs=0", "train.epochs"),
    ("session.min_timeline_length=2", "session.min_timeline_length"),
    ("eval.min_hit_rate_at_10=1.5", "eval.min_hit_rate_at_10"),
    ("eval.max_hit_rate_drop=2", "eval.max_hit_rate_drop"),
    ("eval.popularity_shares=[0.5]", "eval.popularity_shares"),
    ("eval.popularity_shares=[0.9,0.5]", "eval.popularity_shares"),
    ("eval.history_length_edges=[20,10]", "eval.history_length_edges"),
    ("train=3", "train"),
    ("runner=kubeflow", "runner"),
    ("metadata.backend=postgres", "metadata.backend"),
])
def test_bad_settings_fail_naming_the_field(override, field):
  with pytest.raises(ConfigError, match=f"^{field.replace('.', '[.]')}:"):
    load_config(overrides=[override])


def test_override_syntax_errors():
  with pytest.raises(ConfigError, match="expected section.key=value"):
    parse_overrides(["train.epochs"])
  assert parse_overrides(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}


def test_config_file_errors(tmp_path):
  with pytest.raises(ConfigError, match="cannot read config file"):
    load_config(str(tmp_path / "missing.yaml"))
  bad = tmp_path / "bad.yaml"
  bad.write_text("- a list\n")
  with pytest.raises(ConfigError, match="expected a mapping"):
    load_config(str(bad))
  json_file = tmp_path / "c.json"
  json_file.write_text(json.dumps({"serving": {"top_k": 20}}))
  assert load_config(str(json_file)).serving.top_k == 20


def test_every_setting_is_recorded():
  recorded = json.loads(RunConfig().to_json())
  assert set(recorded) == {"profile", "name", "output_dir", "push_dir",
                           "runner",
                           "beam_args", "adapt", "metadata", "data",
                           "session", "model", "train", "eval", "ranking", "ranker",
                           "serving", "tuner", "adapted"}


def test_a_profile_applies_before_the_users_settings():
  ondevice = load_config()
  assert ondevice.profile == "ondevice"
  assert ondevice.model.item_embedding_dim == 24
  assert ondevice.feature_config().label.embedding_dim == 24
  # A profile's settings count as given: the data does not adapt them.
  assert "session.max_context_length" in given_settings()
  quality = load_config(overrides=["profile=quality",
                                   "model.attention_units=48"])
  assert quality.model.item_embedding_dim == 0
  assert quality.feature_config().label.embedding_dim == 64
  assert quality.model.attention_units == 48
  assert "session.max_context_length" not in given_settings(
      overrides=["profile=quality"])
  small = load_config(overrides=["profile=small"])
  assert (small.model.encoder, small.session.max_context_length) == ("bow", 5)
  assert [f.name for g in small.feature_config().groups
          for f in g.features] == ["context_item_id"]
  # The user's settings win over the profile's.
  assert load_config(overrides=["model.item_embedding_dim=16"]).model.\
      item_embedding_dim == 16
  with pytest.raises(ConfigError, match="profile: 'tiny' is not one of "
                     "ondevice, quality, small"):
    load_config(overrides=["profile=tiny"])


def test_readme_settings_table_is_the_definitions_table():
  with open(os.path.join(PROJECT_ROOT, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  found = readme.split(README_TABLE_START, 1)[1].split(README_TABLE_END, 1)[0]
  assert found.strip() == settings_table().strip(), (
      "README's settings table is not the one components/lib/settings.py "
      "and pipeline/config.py define; paste this between its markers:\n"
      + settings_table())


def test_list_settings_from_the_command_line_are_typed():
  config = load_config(overrides=["eval.history_length_edges=5,50",
                                  "ranking.two_stage_candidates=10",
                                  "beam_args=--a=1,--b=2"])
  assert config.eval.history_length_edges == [5, 50]
  assert config.ranking.two_stage_candidates == [10]
  assert config.beam_args == ["--a=1", "--b=2"]


def test_shipped_feature_configs_load_and_fit_the_session_settings():
  for name in ("movielens_ids", "movielens_features"):
    config = load_config(overrides=[f"model.features={name}"])
    assert config.feature_config().label.name == "label_item_id"
  # Genre slots in the feature config must match the sessionizer's.
  with pytest.raises(ConfigError, match=r"model\.features: groups\[0\]\.features"
                     r"\[3\]\.length: context_genre has 4 value\(s\) per item"):
    load_config(overrides=["session.max_item_genres=4"])


def test_feature_config_errors_name_the_field(tmp_path):
  bad = tmp_path / "features.yaml"
  bad.write_text(
      "groups:\n"
      "  - {name: h, type: sequence, features: [\n"
      "      {name: context_item_id, type: STRING, length: 1,"
      " vocabulary: item_id, embedding_dim: 8},\n"
      "      {name: context_yeer, type: INT, length: 1,"
      " buckets: {start: 0, width: 1, count: 3}, embedding_dim: 4}]}\n"
      "label: {name: label_item_id, type: STRING, length: 1,"
      " vocabulary: item_id, embedding_dim: 8}\n")
  with pytest.raises(ConfigError, match=r"groups\[0\]\.features\[1\]\.name: "
                     r"'context_yeer' is not a session feature"):
    load_config(overrides=[f"model.features={bad}"])
  with pytest.raises(ConfigError, match="neither a file nor a shipped config"):
    load_config(overrides=["model.features=nope"])


def test_resolved_feature_config_is_recorded_inline(tmp_path):
  from components.lib import feature_config as fc  # pylint: disable=import-outside-toplevel
  config = load_config(values={"output_dir": str(tmp_path)})
  resolved = config.with_features(fc.resolve(config.feature_config(), False))
  assert isinstance(resolved.model.features, dict)
  # No users in the data: the optional user group is gone, the rest stays.
  assert [g["name"] for g in resolved.model.features["groups"]] == ["history"]
  assert from_json(resolved.to_json()).feature_config() == (
      resolved.feature_config())


def test_uris_stay_and_relative_paths_follow_the_base_dir(tmp_path):
  config = load_config(values={"output_dir": "gs://bucket/run",
                               "data": {"data_dir": "s3://raw/ml-1m"}})
  assert config.output_dir == "gs://bucket/run"
  assert config.data.data_dir == "s3://raw/ml-1m"
  assert config.serving_dir == "gs://bucket/run/serving"
  in_image = load_config(base_dir="/opt/recsys")
  assert in_image.data.data_dir == "/opt/recsys/data/sample"
  assert in_image.output_dir == "/opt/recsys/output/sample"
  assert load_config(values={"data": {"data_dir": str(tmp_path)}},
                     base_dir="/opt/recsys").data.data_dir == str(tmp_path)
