"""Sessionize: raw rating examples -> next-item examples, split per PROTOCOL.md.

The Beam transform runs on hand-made raw examples (as MovieLensExampleGen
writes them); its outputs are written to tmp files and read back, and every
expectation below is written out by hand from the input timelines.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import random

import apache_beam as beam
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components import features as F
from components import sessionize
from components.anomalies import DataValidationError, raise_on_anomalies
from components.artifacts import ItemCatalog
from components.movielens_example_gen import to_example
from components.movielens_formats import Movie, Rating, User
from components.sessionize import SessionizeExamples, SessionParams

# --- Hand-made raw data -------------------------------------------------------

MOVIES = {m.item_id: m for m in (
    Movie("1", "Heat (1995)", ("Action", "Crime"), 1995),
    Movie("2", "Toy Story (1995)", ("Animation", "Children's", "Comedy"), 1995),
    Movie("3", "Untitled", ("Drama",), None),          # no year
    Movie("4", "Blank (2001)", (), 2001),               # no genres
    Movie("5", "Alien (1979)", ("Horror", "Sci-Fi"), 1979),
    Movie("6", "Fargo (1996)", ("Crime", "Drama", "Thriller"), 1996),
    Movie("7", "Brazil (1985)", ("Sci-Fi",), 1985),
    Movie("8", "Psycho (1960)", ("Horror", "Thriller"), 1960),
    Movie("9", "Jaws (1975)", ("Action", "Horror"), 1975),
    Movie("10", "Clue (1985)", ("Comedy", "Mystery"), 1985),
    Movie("11", "Nosferatu (1922)", ("Horror",), 1922),
    Movie("12", "Tron (1982)", ("Action", "Sci-Fi"), 1982),
    Movie("13", "Rocky (1976)", ("Drama",), 1976),
    Movie("14", "Big (1988)", ("Comedy", "Fantasy"), 1988),
)}
ALICE = User("alice", "F", 25, "12", "98107-2117")
BOB = User("bob", "M", 56, "technician", "T8H1N")


@dataclasses.dataclass(frozen=True)
class R:
  """One raw rating: user, item, stars, timestamp, byte offset in the file."""
  user: str
  item: str
  rating: float
  ts: int
  offset: int


def serialize(ratings, users=None):
  users = users or {}
  return [to_example(Rating(r.user, r.item, r.rating, r.ts), r.offset,
                     MOVIES[r.item], users.get(r.user)).SerializeToString()
          for r in ratings]


# alice: distinct timestamps, listed out of time order; the offsets follow the
# listing (as in ratings.dat) so only the timestamps give the order.
ALICE_RATINGS = [
    R("alice", "5", 4.0, 500, 0),
    R("alice", "1", 5.0, 100, 30),
    R("alice", "3", 3.0, 300, 60),
    R("alice", "2", 2.0, 200, 90),
    R("alice", "6", 1.0, 600, 120),
    R("alice", "4", 4.5, 400, 150),
]
ALICE_TIMELINE = ["1", "2", "3", "4", "5", "6"]

# bob: equal timestamps, ordered by file offset only.
BOB_RATINGS = [
    R("bob", "9", 4.0, 700, 2000),
    R("bob", "7", 3.0, 700, 1000),
    R("bob", "8", 5.0, 700, 1500),
    R("bob", "10", 2.0, 50, 2500),
    R("bob", "11", 1.0, 900, 800),
    R("bob", "12", 4.0, 900, 700),
]
BOB_TIMELINE = ["10", "7", "8", "9", "12", "11"]

# carol: exactly three ratings and no user file data (CSV layout): kept.
CAROL_RATINGS = [
    R("carol", "13", 5.0, 30, 3000),
    R("carol", "1", 4.0, 10, 3100),
    R("carol", "14", 3.0, 20, 3200),
]
CAROL_TIMELINE = ["1", "14", "13"]

# dave: two ratings, fewer than 3: dropped (his items stay in the catalog).
DAVE_RATINGS = [R("dave", "2", 5.0, 5, 4000), R("dave", "3", 5.0, 6, 4100)]

# erin: 14 ratings, a new timestamp each, for context truncation.
ERIN_ITEMS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
              "13", "14"]
ERIN_RATINGS = [R("erin", item, float(1 + i % 5), 1000 + i, 5000 + 10 * i)
                for i, item in enumerate(ERIN_ITEMS)]

ALL_RATINGS = (ALICE_RATINGS + BOB_RATINGS + CAROL_RATINGS + DAVE_RATINGS
               + ERIN_RATINGS)
USERS = {"alice": ALICE, "bob": BOB, "erin": ALICE._replace(user_id="erin")}
TIMELINES = {"alice": ALICE_TIMELINE, "bob": BOB_TIMELINE,
             "carol": CAROL_TIMELINE, "erin": ERIN_ITEMS}
RATING_OF = {(r.user, r.item): r.rating for r in ALL_RATINGS}


def shuffled(values, seed):
  values = list(values)
  random.Random(seed).shuffle(values)
  return values


# --- Running the transform ------------------------------------------------------

def _decode(example: tf.train.Example) -> dict:
  out = {}
  for name, feature in example.features.feature.items():
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    out[name] = [v.decode("utf-8") if isinstance(v, bytes) else v
                 for v in values]
  return out


def run_sessionize(tmp_dir, raw, params=SessionParams(), reshuffle=False):
  """-> ({split: [decoded example]}, catalog dict)."""
  os.makedirs(tmp_dir, exist_ok=True)
  with beam.Pipeline() as pipeline:
    pcoll = pipeline | "Create" >> beam.Create(raw)
    if reshuffle:
      pcoll = pcoll | "Reshuffle" >> beam.Reshuffle()
    out = pcoll | "Sessionize" >> SessionizeExamples(params)  # pylint: disable=no-value-for-parameter
    for split in F.SPLITS:
      _ = out[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
          os.path.join(tmp_dir, split), shard_name_template="")
    _ = out[sessionize.CATALOG] | "WriteCatalog" >> beam.io.WriteToText(
        os.path.join(tmp_dir, "catalog.json"), shard_name_template="")
  examples = {}
  for split in F.SPLITS:
    path = os.path.join(tmp_dir, split)
    records = (tf.data.TFRecordDataset(path).as_numpy_iterator()
               if os.path.exists(path) else [])
    examples[split] = [_decode(tf.train.Example.FromString(r)) for r in records]
  with open(os.path.join(tmp_dir, "catalog.json"), encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert len(lines) == 1, lines
  return examples, json.loads(lines[0])


def by_user(examples):
  """{split: {user: [examples]}}; train examples in timeline order (their
  labels are the user's distinct items, placed by TIMELINES)."""
  out = {}
  for split, split_examples in examples.items():
    users = {}
    for e in split_examples:
      (user,) = e[F.USER_ID]
      users.setdefault(user, []).append(e)
    for user, user_examples in users.items():
      order = TIMELINES.get(user)
      if order:
        user_examples.sort(key=lambda e: order.index(e[F.LABEL_ITEM_ID][0]))
    out[split] = users
  return out


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
  # Given in shuffled order: nothing may depend on the input order.
  raw = shuffled(serialize(ALL_RATINGS, USERS), seed=1)
  examples, catalog = run_sessionize(
      str(tmp_path_factory.mktemp("default")), raw)
  return by_user(examples), catalog


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
  """max_context_length 3 and max_context_genres 4."""
  raw = shuffled(serialize(ALL_RATINGS, USERS), seed=2)
  examples, _ = run_sessionize(
      str(tmp_path_factory.mktemp("small")), raw,
      SessionParams(max_context_length=3, max_context_genres=4))
  return by_user(examples)


def labels(examples):
  return [e[F.LABEL_ITEM_ID][0] for e in examples]


def timeline_of(runs, user):
  """The user's item order as the splits give it: train labels, eval, test."""
  return (labels(runs[F.TRAIN][user]) + labels(runs[F.EVAL][user])
          + labels(runs[F.TEST][user]))


# --- Ordering and splits ----------------------------------------------------------

def test_orders_each_user_by_timestamp(default_run):
  runs, _ = default_run
  assert timeline_of(runs, "alice") == ALICE_TIMELINE
  # Context of the test example = the whole earlier timeline, in time order.
  (test,) = runs[F.TEST]["alice"]
  assert test[F.CONTEXT_ITEM_ID] == ALICE_TIMELINE[:-1]


def test_equal_timestamps_keep_file_order(default_run):
  runs, _ = default_run
  assert timeline_of(runs, "bob") == BOB_TIMELINE
  (test,) = runs[F.TEST]["bob"]
  assert test[F.CONTEXT_ITEM_ID] == BOB_TIMELINE[:-1]


@pytest.mark.parametrize("seed", [3, 4])
def test_order_does_not_depend_on_input_order(tmp_path, seed, default_run):
  runs, _ = default_run
  raw = shuffled(serialize(BOB_RATINGS + ALICE_RATINGS, USERS), seed=seed)
  if seed == 4:
    raw.reverse()
  examples, _ = run_sessionize(str(tmp_path), raw, reshuffle=True)
  again = by_user(examples)
  for user in ("alice", "bob"):
    assert timeline_of(again, user) == TIMELINES[user]
    for split in F.SPLITS:
      assert again[split][user] == runs[split][user]


def test_leave_last_out_splits(default_run):
  runs, _ = default_run
  kept = {"alice", "bob", "carol", "erin"}
  for split in F.SPLITS:
    assert set(runs[split]) == kept, split
  for user in kept:
    timeline = TIMELINES[user]
    (eval_example,) = runs[F.EVAL][user]
    (test_example,) = runs[F.TEST][user]
    assert eval_example[F.LABEL_ITEM_ID] == [timeline[-2]], user
    assert test_example[F.LABEL_ITEM_ID] == [timeline[-1]], user
    assert labels(runs[F.TRAIN][user]) == timeline[:-2], user


def test_eval_and_test_targets_are_never_train_labels(default_run):
  runs, _ = default_run
  for user, train in runs[F.TRAIN].items():
    train_labels = set(labels(train))
    targets = set(labels(runs[F.EVAL][user]) + labels(runs[F.TEST][user]))
    assert len(targets) == 2
    assert not targets & train_labels, user


def test_history_is_the_whole_earlier_timeline(small_run):
  # With max_context_length 3 the context is cut, the history never is.
  for user, timeline in TIMELINES.items():
    (eval_example,) = small_run[F.EVAL][user]
    (test_example,) = small_run[F.TEST][user]
    assert eval_example[F.HISTORY_ITEM_ID] == timeline[:-2], user
    # The test target may read the eval item too.
    assert test_example[F.HISTORY_ITEM_ID] == timeline[:-1], user
    assert test_example[F.CONTEXT_ITEM_ID] == timeline[-4:-1], user
    assert eval_example[F.CONTEXT_ITEM_ID] == timeline[-5:-2], user
    for train in small_run[F.TRAIN][user]:
      assert F.HISTORY_ITEM_ID not in train


def test_first_train_example_has_empty_context(default_run):
  runs, _ = default_run
  for user, train in runs[F.TRAIN].items():
    first = train[0]
    assert first[F.LABEL_ITEM_ID] == [TIMELINES[user][0]]
    for name in (F.CONTEXT_ITEM_ID, F.CONTEXT_RATING, F.CONTEXT_YEAR,
                 F.CONTEXT_GENRE):
      assert first.get(name, []) == [], (user, name)


def test_context_keeps_the_most_recent_max_context_length_items(default_run,
                                                                small_run):
  for runs, length in ((default_run[0], 10), (small_run, 3)):
    for position, item in enumerate(ERIN_ITEMS):
      split = (F.TEST if position == len(ERIN_ITEMS) - 1 else
               F.EVAL if position == len(ERIN_ITEMS) - 2 else F.TRAIN)
      (example,) = [e for e in runs[split]["erin"]
                    if e[F.LABEL_ITEM_ID] == [item]]
      assert example.get(F.CONTEXT_ITEM_ID, []) == ERIN_ITEMS[
          max(0, position - length):position], (length, position)


def test_context_genres_are_flattened_and_keep_the_most_recent(default_run,
                                                               small_run):
  runs, _ = default_run
  # alice's test context: items 1..5 in time order; item 4 has no genres.
  (test,) = runs[F.TEST]["alice"]
  assert test[F.CONTEXT_GENRE] == [
      "Action", "Crime", "Animation", "Children's", "Comedy", "Drama",
      "Horror", "Sci-Fi"]
  # max_context_length 3, max_context_genres 4.
  # alice, label 3: context 1, 2 -> Action, Crime | Animation, Children's,
  # Comedy: the 4 most recent genres.
  (train,) = [e for e in small_run[F.TRAIN]["alice"]
              if e[F.LABEL_ITEM_ID] == ["3"]]
  assert train[F.CONTEXT_ITEM_ID] == ["1", "2"]
  assert train[F.CONTEXT_GENRE] == [
      "Crime", "Animation", "Children's", "Comedy"]
  # alice, test: context 3, 4, 5 -> Drama | - | Horror, Sci-Fi (all fit).
  (test,) = small_run[F.TEST]["alice"]
  assert test[F.CONTEXT_ITEM_ID] == ["3", "4", "5"]
  assert test[F.CONTEXT_GENRE] == ["Drama", "Horror", "Sci-Fi"]
  # bob, eval (label 12): context 7, 8, 9 -> Sci-Fi | Horror, Thriller |
  # Action, Horror: the 4 most recent, duplicates kept.
  (eval_example,) = small_run[F.EVAL]["bob"]
  assert eval_example[F.CONTEXT_ITEM_ID] == ["7", "8", "9"]
  assert eval_example[F.CONTEXT_GENRE] == [
      "Horror", "Thriller", "Action", "Horror"]


def test_context_ratings_and_years_align_with_items(default_run, small_run):
  for runs in (default_run[0], small_run):
    for split in F.SPLITS:
      for user, examples in runs[split].items():
        for e in examples:
          context = e.get(F.CONTEXT_ITEM_ID, [])
          assert e.get(F.CONTEXT_RATING, []) == [
              RATING_OF[(user, item)] for item in context]
          assert e.get(F.CONTEXT_YEAR, []) == [
              MOVIES[item].year or 0 for item in context]
  # Spelled out once: alice's test context 1..5, item 3 has no year.
  (test,) = default_run[0][F.TEST]["alice"]
  assert test[F.CONTEXT_RATING] == [5.0, 2.0, 3.0, 4.5, 4.0]
  assert test[F.CONTEXT_YEAR] == [1995, 1995, 0, 2001, 1979]


def test_user_features_carried_when_present(default_run):
  runs, _ = default_run
  for split in F.SPLITS:
    for e in runs[split]["bob"]:
      assert e[F.USER_GENDER] == ["M"]
      assert e[F.USER_AGE] == [56]
      assert e[F.USER_OCCUPATION] == ["technician"]
      assert e[F.USER_ZIPCODE] == ["T8H1N"]
    for e in runs[split]["alice"]:
      assert (e[F.USER_GENDER], e[F.USER_AGE], e[F.USER_OCCUPATION],
              e[F.USER_ZIPCODE]) == (["F"], [25], ["12"], ["98107-2117"])
    for e in runs[split]["carol"]:
      assert not set(F.USER_FEATURES) & set(e), e


def test_short_users_are_dropped(default_run):
  runs, _ = default_run
  for split in F.SPLITS:
    assert "dave" not in runs[split]


def test_min_timeline_length_and_min_rating(tmp_path):
  raw = serialize(ALL_RATINGS, USERS)
  # min_rating 4: alice keeps 1 (5.0), 4 (4.5), 5 (4.0); bob keeps 8, 9, 12
  # (10 is rated 2); carol keeps 13 and 1 (2 < 3: dropped); erin keeps the
  # items rated 4 or 5 (positions 3, 4, 8, 9, 13 mod 5).
  examples, catalog = run_sessionize(
      str(tmp_path / "min_rating"), raw, SessionParams(min_rating=4.0))
  runs = by_user(examples)
  assert set(runs[F.TEST]) == {"alice", "bob", "erin"}
  assert timeline_of(runs, "alice") == ["1", "4", "5"]
  assert timeline_of(runs, "bob") == ["8", "9", "12"]
  erin = [item for i, item in enumerate(ERIN_ITEMS) if 1 + i % 5 >= 4]
  assert timeline_of(runs, "erin") == erin
  (test,) = runs[F.TEST]["erin"]
  assert test[F.HISTORY_ITEM_ID] == erin[:-1]
  for split in F.SPLITS:
    for e in sum(runs[split].values(), []):
      assert all(r >= 4.0 for r in e.get(F.CONTEXT_RATING, []))
  # The catalog still lists every item of the data.
  assert set(catalog) == set(MOVIES)

  # min_timeline_length 7: only erin (14) is long enough.
  examples, _ = run_sessionize(
      str(tmp_path / "min_length"), raw, SessionParams(min_timeline_length=7))
  runs = by_user(examples)
  for split in F.SPLITS:
    assert set(runs[split]) == {"erin"}
  assert len(runs[F.TRAIN]["erin"]) == len(ERIN_ITEMS) - 2


def test_catalog_maps_items_to_title_genres_year(default_run):
  _, catalog = default_run
  # Every item of the data, including those only dave (dropped) rated.
  assert set(catalog) == set(MOVIES)
  for item_id, movie in MOVIES.items():
    assert catalog[item_id] == {
        "title": movie.title, "genres": list(movie.genres),
        "year": movie.year}
  assert catalog["3"]["year"] is None
  assert catalog["4"]["genres"] == []


# --- The executor ---------------------------------------------------------------

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
  raw = serialize(ALICE_RATINGS + BOB_RATINGS + CAROL_RATINGS + DAVE_RATINGS,
                  USERS)
  outputs = _outputs(tmp_path)
  sessionize.Executor().Do(
      {"examples": [_raw_artifact(tmp_path, raw)]},
      {name: [artifact] for name, artifact in outputs.items()},
      {"session_config": json.dumps({"max_context_length": 3})})

  sessions = outputs["sessions"]
  assert artifact_utils.decode_split_names(sessions.split_names) == list(
      F.SPLITS)
  counts = {split: len(_read_split(sessions.uri, split)) for split in F.SPLITS}
  # alice 6, bob 6, carol 3 kept; dave dropped.
  assert counts == {F.TRAIN: 4 + 4 + 1, F.EVAL: 3, F.TEST: 3}
  (bob_test,) = [e for e in _read_split(sessions.uri, F.TEST)
                 if e.features.feature[F.USER_ID].bytes_list.value == [b"bob"]]
  assert list(bob_test.features.feature[F.CONTEXT_ITEM_ID].bytes_list.value) == [
      b"8", b"9", b"12"]

  with open(os.path.join(sessions.uri, sessionize.REPORT_FILE)) as f:
    report = json.load(f)
  expected = {"users": 3, "short_users_dropped": 1,
              "short_user_interactions_dropped": 2,
              "low_rating_interactions_dropped": 0,
              "train_examples": 9, "eval_examples": 3, "test_examples": 3}
  assert {k: report[k] for k in expected} == expected
  assert report["params"]["max_context_length"] == 3
  for name, value in expected.items():
    assert sessions.get_int_custom_property(name) == value, name

  schema = io_utils.SchemaReader().read(
      os.path.join(outputs["schema"].uri, sessionize.SCHEMA_FILE))
  assert schema_utils.schema_as_feature_spec(
      schema).feature_spec == sessionize.feature_spec()

  with open(os.path.join(outputs["catalog"].uri, sessionize.CATALOG_FILE),
            encoding="utf-8") as f:
    catalog = json.load(f)
  assert set(catalog) == {r.item for r in ALICE_RATINGS + BOB_RATINGS
                          + CAROL_RATINGS + DAVE_RATINGS}
  assert catalog["2"] == {"title": "Toy Story (1995)",
                          "genres": ["Animation", "Children's", "Comedy"],
                          "year": 1995}


def _anomalies_artifact(tmp_path, blessed):
  artifact = standard_artifacts.ExampleAnomalies()
  artifact.uri = str(tmp_path / "anomalies")
  artifact.split_names = artifact_utils.encode_split_names(["ratings"])
  artifact.set_json_value_custom_property("blessed", {"ratings": blessed})
  anomalies = anomalies_pb2.Anomalies()
  info = anomalies.anomaly_info["rating"]
  info.short_description = "Out-of-range values"
  info.reason.add(description="Unexpectedly high value: 7>5")
  split_dir = os.path.join(artifact.uri, "Split-ratings")
  os.makedirs(split_dir)
  io_utils.write_bytes_file(os.path.join(split_dir, "SchemaDiff.pb"),
                            anomalies.SerializeToString())
  return artifact


def test_raise_on_anomalies_follows_the_blessing(tmp_path):
  raise_on_anomalies(_anomalies_artifact(tmp_path / "ok", 1))
  with pytest.raises(DataValidationError, match="'rating'.*7>5"):
    raise_on_anomalies(_anomalies_artifact(tmp_path / "bad", 0))


def test_executor_stops_on_anomalies(tmp_path):
  outputs = _outputs(tmp_path)
  with pytest.raises(DataValidationError, match=r"\[ratings\] feature 'rating'"):
    sessionize.Executor().Do(
        {"examples": [_raw_artifact(tmp_path, serialize(ALICE_RATINGS))],
         "anomalies": [_anomalies_artifact(tmp_path, 0)]},
        {name: [artifact] for name, artifact in outputs.items()},
        {"session_config": "{}"})
  # Stopped before sessionizing: nothing was written.
  for artifact in outputs.values():
    assert os.listdir(artifact.uri) == []
