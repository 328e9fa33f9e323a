"""The settings the steps consume: defaults, the checks that name the
setting, and a step's part of the config parsed back typed."""
import dataclasses
import json

import pytest

from components.lib import settings
from components.lib.settings import (ConfigError, ModelConfig, SessionConfig,
                                     SliceConfig, VocabularyConfig)
from components.user_modules.transform import TransformSettings
from tests.support.sessions import feature_config


def test_session_defaults_follow_the_protocol():
  assert dataclasses.asdict(SessionConfig()) == {
      "min_rating": None, "min_timeline_length": 3,
      "max_context_length": 50, "max_item_genres": 3, "train_stride": 0,
      "ranker_labels_per_user": 10}
  with pytest.raises(TypeError):
    SessionConfig(max_context_genres=4)  # pylint: disable=unexpected-keyword-arg


@pytest.mark.parametrize("section, values, name", [
    (SessionConfig, {"min_timeline_length": 2}, "session.min_timeline_length"),
    (SessionConfig, {"max_context_length": 0}, "session.max_context_length"),
    (SessionConfig, {"max_item_genres": 0}, "session.max_item_genres"),
    (SessionConfig, {"train_stride": 51}, "session.train_stride"),
    (SessionConfig, {"train_stride": -1}, "session.train_stride"),
    (SliceConfig, {"history_length_edges": []}, "eval.history_length_edges"),
    (SliceConfig, {"history_length_edges": [10, 5]},
     "eval.history_length_edges"),
    (SliceConfig, {"history_length_edges": [0, 5]},
     "eval.history_length_edges"),
    (SliceConfig, {"popularity_shares": [0.8, 0.5]}, "eval.popularity_shares"),
    (SliceConfig, {"popularity_shares": [0.0, 0.5]}, "eval.popularity_shares"),
    (SliceConfig, {"popularity_shares": [0.5, 1.5]}, "eval.popularity_shares"),
    (SliceConfig, {"popularity_shares": [0.5]}, "eval.popularity_shares"),
    (ModelConfig, {"attention_units": 10, "attention_heads": 3},
     "model.attention_units"),
    (ModelConfig, {"vocabulary_top_k": -1}, "model.vocabulary_top_k"),
    (SessionConfig, {"ranker_labels_per_user": -1},
     "session.ranker_labels_per_user"),
    (settings.RankerConfig, {"candidates": 0}, "ranker.candidates"),
    (settings.RankerConfig, {"successors": 0}, "ranker.successors"),
    (settings.RankerConfig, {"recent_windows": []}, "ranker.recent_windows"),
    (settings.RankerConfig, {"recent_windows": [0, 5]},
     "ranker.recent_windows"),
    (settings.RankerConfig, {"quantization": "int8"}, "ranker.quantization"),
    (settings.RankerConfig, {"dropout": 1.0}, "ranker.dropout"),
    (settings.RankingConfig, {"hidden_units": []}, "ranking.hidden_units"),
])
def test_checks_name_the_setting(section, values, name):
  prefix = name.split(".")[0]
  section().check(prefix)  # the defaults pass
  with pytest.raises(ConfigError, match=f"^{name}: "):
    section(**values).check(prefix)


def test_every_setting_has_help():
  for cls in (settings.DataConfig, SessionConfig, ModelConfig,
              settings.TrainConfig, settings.EvalConfig,
              settings.RankingConfig, settings.RankerConfig,
              settings.ServingConfig):
    for field in dataclasses.fields(cls):
      assert field.metadata.get("help"), f"{cls.__name__}.{field.name}"


def test_a_part_of_a_section_is_its_base_class():
  # The vocabulary caps are the model section's, and Transform reads them
  # alone: a base class, one definition of each setting.
  model = ModelConfig(encoder="gru", vocabulary_top_k=7)
  assert settings.part(model, VocabularyConfig) == {
      "vocabulary_top_k": 7, "vocabulary_min_count": 1}
  assert {f.name for f in dataclasses.fields(VocabularyConfig)} < {
      f.name for f in dataclasses.fields(ModelConfig)}


def test_step_settings_round_trip_typed():
  step = TransformSettings(features=feature_config(),
                           session=SessionConfig(max_context_length=7),
                           model=VocabularyConfig(vocabulary_min_count=2))
  parsed = TransformSettings.from_json(step.to_json())
  assert parsed == step
  assert isinstance(parsed.session, SessionConfig)
  assert parsed.features == feature_config()
  # What a custom_config holds: plain JSON.
  assert json.loads(step.to_json())["model"] == {
      "vocabulary_top_k": 0, "vocabulary_min_count": 2}
