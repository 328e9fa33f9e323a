"""Feature-group configs: structure, validation against the session data."""
import copy

import pytest

from components.lib import feature_config as fc
from tests.support.sessions import GENRE_SLOTS, feature_config

GOOD = feature_config().to_dict()


def check(raw, slots=GENRE_SLOTS):
  config = fc.parse(raw)
  fc.validate(config, slots)
  return config


def edited(path, value):
  raw = copy.deepcopy(GOOD)
  node = raw
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = value
  return raw


def test_round_trip_through_dict():
  config = check(GOOD)
  assert check(config.to_dict()) == config
  assert config.vocabularies() == ["item_id", "genre", "user_gender"]


@pytest.mark.parametrize("path, value, message", [
    (("groups", 0, "features", 1, "type"), "INT",
     r"groups\[0\]\.features\[1\]\.type: context_rating is FLOAT, not INT"),
    (("groups", 0, "features", 3, "length"), 5,
     r"groups\[0\]\.features\[3\]\.length: context_genre has 2 value"),
    (("groups", 0, "features", 0, "name"), "context_itm",
     r"groups\[0\]\.features\[0\]\.name: 'context_itm' is not a session"),
    (("groups", 1, "features", 0, "name"), "context_rating",
     r"groups\[1\]\.features\[0\]\.name: 'context_rating' appears twice"),
    (("groups", 0, "type"), "static",
     r"expected exactly one sequence group, found 0"),
    (("groups", 0, "features", 0, "length"), 0,
     r"groups\[0\]\.features\[0\]\.length: must be a positive integer"),
    (("groups", 0, "encoder"), "transformer",
     r"groups\[0\]\.encoder: 'transformer' is not one of"),
    (("label", "vocabulary"), "other",
     r"label\.vocabulary: context and label items must share a vocabulary"),
    (("label", "name"), "context_item_id", r"label\.name: the label is"),
    (("groups", 0, "features", 0, "typo"), 1,
     r"groups\[0\]\.features\[0\]\.typo: unknown key"),
])
def test_bad_configs_name_the_field(path, value, message):
  with pytest.raises(fc.FeatureConfigError, match=message):
    check(edited(path, value))


def test_index_count_is_the_buckets_or_the_vocabulary_with_reserved_ids():
  features = {f.name: f for g in check(GOOD).groups for f in g.features}
  sizes = {"item_id": 50, "genre": 6, "user_gender": 4}
  assert features["context_item_id"].index_count(sizes) == 50
  # 30 year buckets, then PAD and OOV.
  assert features["context_year"].index_count(sizes) == 32


def test_types_need_the_right_vocabulary_source():
  string_with_buckets = edited(("groups", 0, "features", 3),
                               {**GOOD["groups"][0]["features"][3],
                                "buckets": {"start": 0, "width": 1,
                                            "count": 2}})
  with pytest.raises(fc.FeatureConfigError, match="needs a `vocabulary`"):
    check(string_with_buckets)
  int_with_vocabulary = edited(("groups", 0, "features", 2),
                               {"name": "context_year", "type": "INT",
                                "length": 1, "vocabulary": "year",
                                "embedding_dim": 4})
  with pytest.raises(fc.FeatureConfigError, match="needs `buckets`"):
    check(int_with_vocabulary)


def test_static_group_cannot_hold_sequence_features():
  raw = edited(("groups", 1, "features", 0),
               {"name": "context_year", "type": "INT", "length": 1,
                "buckets": {"start": 0, "width": 1, "count": 2},
                "embedding_dim": 4})
  raw["groups"][0]["features"].pop(2)
  with pytest.raises(fc.FeatureConfigError,
                     match="context_year is a sequence feature, not static"):
    check(raw)


def test_optional_groups_follow_the_data():
  raw = edited(("groups", 1, "optional"), True)
  config = check(raw)
  assert [g.name for g in fc.resolve(config, True).groups] == ["history", "user"]
  assert [g.name for g in fc.resolve(config, False).groups] == ["history"]
  # A group that is not optional stays (the run then fails on missing data).
  assert len(fc.resolve(check(GOOD), False).groups) == 2
