"""Sessionize's executor: the splits, report, schema and catalog it writes
from a raw Examples artifact, and the anomalies that stop it first."""
import glob
import json
import os

import pytest
import tensorflow as tf
from tensorflow_transform.tf_metadata import schema_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.artifacts import ItemCatalog
from components.lib import features as F
from components.lib import layout
from components.lib.settings import DataConfig, SessionConfig, SliceConfig
from components.sessionize import executor
from components.sessionize.anomalies import DataValidationError
from components.sessionize.sessions import feature_spec
from tests.components.sessionize.test_anomalies import anomalies_artifact
from tests.components.sessionize.test_sessions import (
    ALICE_RATINGS, BOB_RATINGS, CAROL_RATINGS, DAVE_RATINGS, FRANK_RATINGS,
    MOVIES, USERS, by_user, decode, serialize, windows)


def _raw_artifact(tmp_path, raw):
  artifact = standard_artifacts.Examples()
  artifact.uri = str(tmp_path / "raw")
  artifact.split_names = artifact_utils.encode_split_names(["ratings"])
  split_dir = os.path.join(artifact.uri, "Split-ratings")
  os.makedirs(split_dir)
  with tf.io.TFRecordWriter(
      os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"),
      options="GZIP") as writer:
    for record in raw:
      writer.write(record)
  return artifact


def _outputs(tmp_path):
  outputs = {"sessions": standard_artifacts.Examples(),
             "schema": standard_artifacts.Schema(),
             "catalog": ItemCatalog()}
  for name, artifact in outputs.items():
    artifact.uri = str(tmp_path / name)
    os.makedirs(artifact.uri)
  return outputs


def _read_split(uri, split):
  files = glob.glob(os.path.join(uri, f"Split-{split}", "*.gz"))
  assert files, (uri, split)
  return [tf.train.Example.FromString(r) for r in tf.data.TFRecordDataset(
      files, compression_type="GZIP").as_numpy_iterator()]


def test_executor_end_to_end(tmp_path):
  raw = serialize(ALICE_RATINGS + BOB_RATINGS + CAROL_RATINGS + DAVE_RATINGS
                  + FRANK_RATINGS, USERS)
  outputs = _outputs(tmp_path)
  executor.Executor().Do(
      {"examples": [_raw_artifact(tmp_path, raw)]},
      {name: [artifact] for name, artifact in outputs.items()},
      {executor.SETTINGS: executor.SessionizeSettings(
          data=DataConfig(), eval=SliceConfig(),
          session=SessionConfig(max_context_length=3, max_item_genres=2,
                                min_rating=1.5, train_stride=2)).to_json()})

  sessions = outputs["sessions"]
  assert artifact_utils.decode_split_names(sessions.split_names) == list(
      F.SESSION_SPLITS)
  # min_rating 1.5 drops alice's 6, bob's 11 and frank's 1 (all rated 1).
  # Left: alice 1 2 3 4 5 (3 train), bob 10 7 8 9 12 (3 train), carol 1 14 13
  # (1 train), frank 15 4 6 3 2 5 7 14 13 9 11 (9 train: windows of 4
  # starting at 0, 1, 3 and 5); dave (2) dropped.
  runs = by_user({split: [decode(e) for e in _read_split(sessions.uri, split)]
                  for split in F.SPLITS})
  assert {user: windows(train) for user, train in runs[F.TRAIN].items()} == {
      "alice": [(["1", "2"], "3", 0)],
      "bob": [(["10", "7"], "8", 0)],
      "carol": [([], "1", 0)],
      "frank": [(["15", "4", "6"], "3", 0), (["4", "6", "3"], "2", 3),
                (["3", "2", "5"], "7", 2), (["5", "7", "14"], "13", 2)],
  }
  assert {user: (e[F.CONTEXT_ITEM_ID], e[F.LABEL_ITEM_ID][0],
                 e[F.HISTORY_ITEM_ID])
          for user, (e,) in runs[F.TEST].items()} == {
              "alice": (["2", "3", "4"], "5", ["1", "2", "3", "4"]),
              "bob": (["7", "8", "9"], "12", ["10", "7", "8", "9"]),
              "carol": (["1", "14"], "13", ["1", "14"]),
              "frank": (["14", "13", "9"], "11",
                        ["15", "4", "6", "3", "2", "5", "7", "14", "13", "9"]),
          }
  assert {user: e[F.LABEL_ITEM_ID][0]
          for user, (e,) in runs[F.EVAL].items()} == {
              "alice": "4", "bob": "9", "carol": "14", "frank": "9"}
  # Two genre slots: frank's second window, context 4 (none) | 6 | 3.
  assert runs[F.TRAIN]["frank"][1][F.CONTEXT_GENRE] == [
      "", "", "Crime", "Drama", "Drama", ""]

  with open(os.path.join(sessions.uri, layout.SESSIONIZE_REPORT)) as f:
    report = json.load(f)
  expected = {"users": 4, "short_users_dropped": 1,
              "short_user_interactions_dropped": 2,
              "low_rating_interactions_dropped": 3,
              "train_interactions": 3 + 3 + 1 + 9,
              "train_examples": 1 + 1 + 1 + 4,
              "train_context_repeats": 3 + 2 + 2,
              "eval_examples": 4, "test_examples": 4,
              # 2 (3 genres), 6 (3 genres), 15 (4 genres) > 2 slots.
              "items_with_more_genres_than_slots": 3,
              # One span: no forward evaluation.
              "forward_examples": 0, "forward_new_users": 0,
              # At most half of each user's train interactions.
              "ranker_train_examples": 1 + 1 + 0 + 4}
  assert report == {**expected, "spans": [0], "forward_span": None,
                    "params": {
      "min_rating": 1.5, "min_timeline_length": 3, "max_context_length": 3,
      "max_item_genres": 2, "train_stride": 2,
      "ranker_labels_per_user": 10}}
  for name, value in expected.items():
    assert sessions.get_int_custom_property(name) == value, name

  schema = io_utils.SchemaReader().read(
      os.path.join(outputs["schema"].uri, layout.SESSIONS_SCHEMA))
  assert schema_utils.schema_as_feature_spec(
      schema).feature_spec == feature_spec()

  with open(os.path.join(outputs["catalog"].uri, layout.CATALOG),
            encoding="utf-8") as f:
    catalog = json.load(f)
  assert set(catalog) == set(MOVIES)
  assert catalog["2"] == {"title": "Toy Story (1995)",
                          "genres": ["Animation", "Children's", "Comedy"],
                          "year": 1995}
  assert outputs["catalog"].get_string_custom_property(
      ItemCatalog.DATASET_PROPERTY) == "movielens"


def test_executor_stops_on_anomalies(tmp_path):
  outputs = _outputs(tmp_path)
  with pytest.raises(DataValidationError, match=r"\[ratings\] feature 'rating'"):
    executor.Executor().Do(
        {"examples": [_raw_artifact(tmp_path, serialize(ALICE_RATINGS))],
         "anomalies": [anomalies_artifact(tmp_path, 0)]},
        {name: [artifact] for name, artifact in outputs.items()},
        {executor.SETTINGS: executor.SessionizeSettings(
            DataConfig(), SessionConfig(), SliceConfig()).to_json()})
  # Stopped before sessionizing: nothing was written.
  for artifact in outputs.values():
    assert os.listdir(artifact.uri) == []
