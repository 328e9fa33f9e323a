"""Sessionize: raw rating examples -> next-item examples, split per PROTOCOL.md.

The Beam transform runs on hand-made raw examples (as MovieLensExampleGen
writes them); its outputs are written to tmp files and read back, and every
expectation below is written out by hand from the input timelines.

Layout under test (components/sessionize/sessions.py): with n interactions the last is
the test target, the one before the eval target, the first n-2 train. Eval
and test are one example each (context = up to max_context_length items just
before the target, history = everything before it). Train interactions are
covered by windows of max_context_length+1 items, the newest ending at the
last train interaction and older ones sliding back by train_stride items to
the first; each window is one example whose label is its last item and whose
context is the rest, and whose items from own_items_from on are its own:
every train interaction is the own item of exactly one window.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import random

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
import pytest
import tensorflow as tf

from components.lib import features as F
from components.lib import slices
from components.lib.movielens_formats import Movie, Rating, User
from components.lib.settings import SessionConfig
from components.sessionize import sessions
from components.sessionize.sessions import SessionizeExamples
from tests.support.examples import to_example

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
    # More genres than the default 3 slots.
    Movie("15", "Aladdin (1992)",
          ("Animation", "Children's", "Comedy", "Musical"), 1992),
)}
ALICE = User("alice", "F", 25, "12", "98107-2117")
BOB = User("bob", "M", 56, "technician", "T8H1N")
FRANK = User("frank", "M", 35, "7", "55455")


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

# bob: equal timestamps, ordered by file offset only; the tie 12/11 decides
# which of them is the eval and which the test target.
BOB_RATINGS = [
    R("bob", "9", 4.0, 700, 2000),
    R("bob", "7", 3.0, 700, 1000),
    R("bob", "8", 5.0, 700, 1500),
    R("bob", "10", 2.0, 50, 2500),
    R("bob", "11", 1.0, 900, 800),
    R("bob", "12", 4.0, 900, 700),
]
BOB_TIMELINE = ["10", "7", "8", "9", "12", "11"]

# carol: exactly three ratings and no user file data (CSV layout): kept, with
# one train interaction (a window of one item: empty context).
CAROL_RATINGS = [
    R("carol", "13", 5.0, 30, 3000),
    R("carol", "1", 4.0, 10, 3100),
    R("carol", "14", 3.0, 20, 3200),
]
CAROL_TIMELINE = ["1", "14", "13"]

# dave: two ratings, fewer than 3: dropped (his items stay in the catalog).
DAVE_RATINGS = [R("dave", "2", 5.0, 5, 4000), R("dave", "3", 5.0, 6, 4100)]

# erin: 14 ratings, a new timestamp each: 12 train interactions, five
# windows of 4 with max_context_length 3 and train_stride 2.
ERIN_ITEMS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
              "13", "14"]
# Ratings 1 + i % 5: items 1..14 rated 1 2 3 4 5 1 2 3 4 5 1 2 3 4.
ERIN_RATINGS = [R("erin", item, float(1 + i % 5), 1000 + i, 5000 + 10 * i)
                for i, item in enumerate(ERIN_ITEMS)]

# frank: 12 ratings listed out of time order: 10 train interactions, so with
# max_context_length 3 and train_stride 2, four windows of 4.
FRANK_RATINGS = [
    R("frank", "9", 4.5, 2100, 6000),
    R("frank", "15", 4.0, 1200, 6040),
    R("frank", "2", 4.0, 1600, 6080),
    R("frank", "4", 3.0, 1300, 6120),
    R("frank", "11", 3.0, 2200, 6160),
    R("frank", "6", 5.0, 1400, 6200),
    R("frank", "13", 2.5, 2000, 6240),
    R("frank", "3", 2.0, 1500, 6280),
    R("frank", "1", 1.0, 1700, 6320),
    R("frank", "7", 4.0, 1850, 6360),
    R("frank", "5", 3.5, 1800, 6400),
    R("frank", "14", 5.0, 1900, 6440),
]
FRANK_TIMELINE = ["15", "4", "6", "3", "2", "1", "5", "7", "14", "13", "9",
                  "11"]

ALL_RATINGS = (ALICE_RATINGS + BOB_RATINGS + CAROL_RATINGS + DAVE_RATINGS
               + ERIN_RATINGS + FRANK_RATINGS)
USERS = {"alice": ALICE, "bob": BOB, "erin": ALICE._replace(user_id="erin"),
         "frank": FRANK}
TIMELINES = {"alice": ALICE_TIMELINE, "bob": BOB_TIMELINE,
             "carol": CAROL_TIMELINE, "erin": ERIN_ITEMS,
             "frank": FRANK_TIMELINE}
RATING_OF = {(r.user, r.item): r.rating for r in ALL_RATINGS}

# Train windows as (context, label, own_items_from), oldest first, written
# out by hand. Default params (max_context_length 50): one window per user.
DEFAULT_TRAIN = {
    "alice": [(["1", "2", "3"], "4", 0)],
    "bob": [(["10", "7", "8"], "9", 0)],
    "carol": [([], "1", 0)],
    "erin": [(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"],
              "12", 0)],
    "frank": [(["15", "4", "6", "3", "2", "1", "5", "7", "14"], "13", 0)],
}
# max_context_length 3, train_stride 2: windows of 4, the newest ending at
# the last train item, each older one 2 items earlier, the oldest at the
# first; a window's first 2 context items are the older window's (own from
# index 2).
SMALL_TRAIN = {
    "alice": [(["1", "2", "3"], "4", 0)],
    "bob": [(["10", "7", "8"], "9", 0)],
    "carol": [([], "1", 0)],
    "erin": [(["1", "2", "3"], "4", 0), (["3", "4", "5"], "6", 2),
             (["5", "6", "7"], "8", 2), (["7", "8", "9"], "10", 2),
             (["9", "10", "11"], "12", 2)],
    "frank": [(["15", "4", "6"], "3", 0), (["6", "3", "2"], "1", 2),
              (["2", "1", "5"], "7", 2), (["5", "7", "14"], "13", 2)],
}
# max_context_length 3: eval and test as (context, label, history).
SMALL_EVAL = {
    "alice": (["2", "3", "4"], "5", ["1", "2", "3", "4"]),
    "bob": (["7", "8", "9"], "12", ["10", "7", "8", "9"]),
    "carol": (["1"], "14", ["1"]),
    "erin": (["10", "11", "12"], "13",
             ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]),
    "frank": (["7", "14", "13"], "9",
              ["15", "4", "6", "3", "2", "1", "5", "7", "14", "13"]),
}
SMALL_TEST = {
    "alice": (["3", "4", "5"], "6", ["1", "2", "3", "4", "5"]),
    "bob": (["8", "9", "12"], "11", ["10", "7", "8", "9", "12"]),
    "carol": (["1", "14"], "13", ["1", "14"]),
    "erin": (["11", "12", "13"], "14",
             ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
              "13"]),
    "frank": (["14", "13", "9"], "11",
              ["15", "4", "6", "3", "2", "1", "5", "7", "14", "13", "9"]),
}
SMALL_PARAMS = SessionConfig(max_context_length=3, max_item_genres=2,
                             train_stride=2)
CONTEXT_FEATURES = (F.CONTEXT_ITEM_ID, F.CONTEXT_RATING, F.CONTEXT_YEAR,
                    F.CONTEXT_GENRE)


def shuffled(values, seed):
  values = list(values)
  random.Random(seed).shuffle(values)
  return values


# --- Running the transform ------------------------------------------------------

def decode(example: tf.train.Example) -> dict:
  out = {}
  for name, feature in example.features.feature.items():
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    out[name] = [v.decode("utf-8") if isinstance(v, bytes) else v
                 for v in values]
  return out


def run_sessionize(tmp_dir, raw, params=SessionConfig(), reshuffle=False,
                   num_buckets=0, forward_span=None):
  """`raw`: serialized raw examples (span 0), or (span, example) pairs ->
  ({split: [decoded example]}, catalog dict, {counter: value})."""
  os.makedirs(tmp_dir, exist_ok=True)
  pipeline = beam.Pipeline()
  pcoll = pipeline | "Create" >> beam.Create(
      [r if isinstance(r, tuple) else (0, r) for r in raw])
  if reshuffle:
    pcoll = pcoll | "Reshuffle" >> beam.Reshuffle()
  out = pcoll | "Sessionize" >> SessionizeExamples(  # pylint: disable=no-value-for-parameter
      params, spill_dir=os.path.join(tmp_dir, "spill"), num_buckets=num_buckets,
      forward_span=forward_span)
  for split in F.SESSION_SPLITS:
    _ = out[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
        os.path.join(tmp_dir, split), shard_name_template="")
  _ = out[sessions.CATALOG] | "WriteCatalog" >> beam.io.WriteToText(
      os.path.join(tmp_dir, "catalog.json"), shard_name_template="")
  result = pipeline.run()
  result.wait_until_finish()
  counters = collections.Counter()
  for counter in result.metrics().query(
      MetricsFilter().with_namespace(sessions.NAMESPACE))["counters"]:
    counters[counter.key.metric.name] += counter.result
  examples = {}
  for split in F.SESSION_SPLITS:
    path = os.path.join(tmp_dir, split)
    records = (tf.data.TFRecordDataset(path).as_numpy_iterator()
               if os.path.exists(path) else [])
    examples[split] = [decode(tf.train.Example.FromString(r)) for r in records]
  with open(os.path.join(tmp_dir, "catalog.json"), encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert len(lines) == 1, lines
  return examples, json.loads(lines[0]), dict(counters)


def by_user(examples):
  """{split: {user: [examples]}}; train examples (windows) in timeline order
  (their labels are distinct items of the user, placed by TIMELINES)."""
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


@dataclasses.dataclass
class Run:
  runs: dict      # {split: {user: [decoded examples]}}
  catalog: dict
  counters: dict


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
  """Default params: max_context_length 50, max_item_genres 3."""
  # Given in shuffled order: nothing may depend on the input order.
  raw = shuffled(serialize(ALL_RATINGS, USERS), seed=1)
  examples, catalog, counters = run_sessionize(
      str(tmp_path_factory.mktemp("default")), raw)
  return Run(by_user(examples), catalog, counters)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
  """max_context_length 3 and max_item_genres 2."""
  raw = shuffled(serialize(ALL_RATINGS, USERS), seed=2)
  examples, catalog, counters = run_sessionize(
      str(tmp_path_factory.mktemp("small")), raw, SMALL_PARAMS)
  return Run(by_user(examples), catalog, counters)


def labels(examples):
  return [e[F.LABEL_ITEM_ID][0] for e in examples]


def windows(train_examples):
  """[(context, label, own_items_from)] of a user's train examples, in
  timeline order."""
  return [(e.get(F.CONTEXT_ITEM_ID, []), e[F.LABEL_ITEM_ID][0],
           e[F.OWN_ITEMS_FROM][0]) for e in train_examples]


def train_items(train_examples):
  """A user's train interactions as the windows own them: each window's own
  context items followed by its label, window after window."""
  return [item for context, label, own_from in windows(train_examples)
          for item in context[own_from:] + [label]]


def timeline_of(runs, user):
  """The user's whole timeline as the splits give it: the test example's
  history followed by its label."""
  (test,) = runs[F.TEST][user]
  return test[F.HISTORY_ITEM_ID] + test[F.LABEL_ITEM_ID]


# --- Ordering and splits ----------------------------------------------------------

def test_orders_each_user_by_timestamp(default_run):
  runs = default_run.runs
  assert timeline_of(runs, "alice") == ALICE_TIMELINE
  assert timeline_of(runs, "frank") == FRANK_TIMELINE
  assert train_items(runs[F.TRAIN]["alice"]) == ["1", "2", "3", "4"]
  # Context of the test example = the whole earlier timeline, in time order.
  (test,) = runs[F.TEST]["alice"]
  assert test[F.CONTEXT_ITEM_ID] == ["1", "2", "3", "4", "5"]


def test_equal_timestamps_keep_file_order(default_run, small_run):
  runs = default_run.runs
  assert timeline_of(runs, "bob") == BOB_TIMELINE
  assert windows(runs[F.TRAIN]["bob"]) == [(["10", "7", "8"], "9", 0)]
  (eval_example,) = runs[F.EVAL]["bob"]
  (test,) = runs[F.TEST]["bob"]
  # 12 and 11 share a timestamp; 12 comes first in the file.
  assert eval_example[F.LABEL_ITEM_ID] == ["12"]
  assert test[F.LABEL_ITEM_ID] == ["11"]
  assert test[F.CONTEXT_ITEM_ID] == ["10", "7", "8", "9", "12"]
  (test,) = small_run.runs[F.TEST]["bob"]
  assert test[F.CONTEXT_ITEM_ID] == ["8", "9", "12"]


def test_a_timeline_runs_across_spans_in_time_then_span_order(tmp_path):
  """Spans are periods: a user's interactions from several spans make one
  timeline, by timestamp, ties in span order before file order (offsets of
  two spans' files say nothing of each other); an item's catalog entry is
  its newest span's."""
  first = serialize([R("alice", "1", 5.0, 100, 900), R("alice", "2", 4.0, 300, 0)])
  second = serialize([R("alice", "3", 3.0, 300, 10), R("alice", "4", 2.0, 200, 20),
                      R("alice", "5", 1.0, 400, 30)])
  renamed = to_example(Rating("alice", "6", 2.0, 500), 40, MOVIES["1"]._replace(
      item_id="6", title="Heat (Director's Cut) (1995)"), None
                       ).SerializeToString()
  older = to_example(Rating("bob", "6", 2.0, 50), 0,
                     MOVIES["1"]._replace(item_id="6"), None).SerializeToString()
  examples, catalog, _ = run_sessionize(
      str(tmp_path), [(1, r) for r in first] + [(2, r) for r in second]
      + [(2, renamed), (1, older)])
  runs = by_user(examples)
  # 2 (span 1) and 3 (span 2) share timestamp 300.
  assert timeline_of(runs, "alice") == ["1", "4", "2", "3", "5", "6"]
  assert catalog["6"]["title"] == "Heat (Director's Cut) (1995)"


def test_the_forward_split_is_each_users_first_interaction_in_the_newest_span(
    tmp_path):
  """With several spans, each user's first interaction (in time) in the
  newest span is a forward target with every earlier interaction as its
  history, whichever span that came from; a user with nothing before the
  newest span is counted, not a target; one without it has no target."""
  raw = ([(1, r) for r in serialize([
      R("alice", "1", 5.0, 100, 0), R("alice", "2", 4.0, 300, 10),
      R("bob", "1", 4.0, 100, 20), R("bob", "2", 4.0, 200, 30),
      R("bob", "3", 4.0, 300, 40)])]
         + [(2, r) for r in serialize([
             R("alice", "3", 3.0, 250, 0), R("alice", "4", 3.0, 400, 10),
             R("alice", "5", 3.0, 500, 20), R("carol", "1", 3.0, 100, 30),
             R("carol", "2", 3.0, 200, 40), R("carol", "3", 3.0, 300, 50)])])
  examples, _, counters = run_sessionize(
      str(tmp_path), raw, SessionConfig(max_context_length=1), forward_span=2)

  (forward,) = examples[F.FORWARD]
  assert forward[F.USER_ID] == ["alice"]
  assert forward[F.LABEL_ITEM_ID] == ["3"]  # span 2, before span 1's "2"
  assert forward[F.CONTEXT_ITEM_ID] == ["1"]
  assert forward[F.HISTORY_ITEM_ID] == ["1"]
  assert counters["forward_examples"] == 1
  assert counters["forward_new_users"] == 1  # carol
  # The leave-last-out splits do not change.
  assert [e[F.LABEL_ITEM_ID] for e in examples[F.TEST]
          if e[F.USER_ID] == ["alice"]] == [["5"]]

  without, _, _ = run_sessionize(str(tmp_path / "one"), raw,
                                 SessionConfig(max_context_length=1))
  assert without[F.FORWARD] == []


@pytest.mark.parametrize("seed", [3, 4])
def test_order_does_not_depend_on_input_order(tmp_path, seed, default_run):
  raw = shuffled(serialize(ALL_RATINGS, USERS), seed=seed)
  if seed == 4:
    raw.reverse()
  examples, catalog, counters = run_sessionize(str(tmp_path), raw,
                                               reshuffle=True)
  again = by_user(examples)
  assert again == default_run.runs
  assert catalog == default_run.catalog
  assert counters == default_run.counters


def test_grouping_users_through_disk_gives_the_same_sessions(tmp_path,
                                                            default_run):
  raw = shuffled(serialize(ALL_RATINGS, USERS), seed=5)
  examples, catalog, counters = run_sessionize(str(tmp_path), raw,
                                               num_buckets=3)
  assert {n.split("-")[1] for n in os.listdir(tmp_path / "spill")} == {
      "00000", "00001", "00002"}  # the users went through 3 buckets
  assert by_user(examples) == default_run.runs
  assert catalog == default_run.catalog
  assert counters == default_run.counters


def test_leave_last_out_splits(default_run, small_run):
  for run in (default_run, small_run):
    runs = run.runs
    kept = {"alice", "bob", "carol", "erin", "frank"}
    for split in F.SPLITS:
      assert set(runs[split]) == kept, split
    for user in kept:
      timeline = TIMELINES[user]
      (eval_example,) = runs[F.EVAL][user]
      (test_example,) = runs[F.TEST][user]
      assert eval_example[F.LABEL_ITEM_ID] == [timeline[-2]], user
      assert test_example[F.LABEL_ITEM_ID] == [timeline[-1]], user


def test_eval_and_test_targets_are_never_train_items(default_run, small_run):
  for run in (default_run, small_run):
    for user, train in run.runs[F.TRAIN].items():
      targets = set(labels(run.runs[F.EVAL][user])
                    + labels(run.runs[F.TEST][user]))
      assert len(targets) == 2
      # Neither a train label nor in a train context.
      assert not targets & {item for context, label, _ in windows(train)
                            for item in context + [label]}, user
      for e in train:
        assert F.HISTORY_ITEM_ID not in e, (user, e)


def test_ranker_labels_are_the_newest_train_interactions(default_run,
                                                         small_run):
  held = {"alice": 2, "bob": 2, "carol": 0, "erin": 6, "frank": 5}
  for run, context_length in ((default_run, 50), (small_run, 3)):
    for user, count in held.items():
      timeline = TIMELINES[user]
      train_end = len(timeline) - 2
      ranker = run.runs[F.RANKER_TRAIN].get(user, [])
      # One example per held-out train interaction, each with the history
      # before it and its most recent items as the context.
      assert labels(ranker) == timeline[train_end - count:train_end], user
      for e in ranker:
        position = timeline.index(e[F.LABEL_ITEM_ID][0])
        assert e[F.HISTORY_ITEM_ID] == timeline[:position]
        assert e.get(F.CONTEXT_ITEM_ID, []) == timeline[
            max(0, position - context_length):position]
        assert e[F.RANKER_LABELS_FROM] == [len(e.get(F.CONTEXT_ITEM_ID, []))
                                           + 1]
      # The train windows mark them: an item at or after a window's
      # ranker_labels_from is a ranker label, the items before it are not.
      marked = set()
      for e in run.runs[F.TRAIN][user]:
        items = e.get(F.CONTEXT_ITEM_ID, []) + e[F.LABEL_ITEM_ID]
        (start,) = e[F.RANKER_LABELS_FROM]
        assert 0 <= start <= len(items)
        assert not set(items[:start]) & set(labels(ranker)), user
        marked |= set(items[start:])
      assert marked == set(labels(ranker)), user
  # Eval and test examples hold no ranker label.
  for e in default_run.runs[F.TEST]["erin"]:
    assert e[F.RANKER_LABELS_FROM] == [len(e[F.CONTEXT_ITEM_ID]) + 1]


def test_no_ranker_labels_when_none_are_asked_for(tmp_path):
  examples, _, counters = run_sessionize(
      str(tmp_path), serialize(ALL_RATINGS, USERS),
      SessionConfig(ranker_labels_per_user=0))
  assert examples[F.RANKER_TRAIN] == []
  assert "ranker_train_examples" not in counters
  for e in examples[F.TRAIN]:
    items = e.get(F.CONTEXT_ITEM_ID, []) + e[F.LABEL_ITEM_ID]
    assert e[F.RANKER_LABELS_FROM] == [len(items)]


# --- Train windows ----------------------------------------------------------------

def test_train_windows_with_default_params(default_run):
  # max_context_length 50 > every user's train part: one window per user.
  assert {user: windows(train)
          for user, train in default_run.runs[F.TRAIN].items()
          } == DEFAULT_TRAIN


def test_train_windows_with_small_context(small_run):
  # erin: 12 train items = 5 windows of 4; frank: 10 = 4 windows of 4;
  # alice and bob: 4 = one window; carol: 1 = one window of one item.
  assert {user: windows(train)
          for user, train in small_run.runs[F.TRAIN].items()} == SMALL_TRAIN


def test_user_with_three_interactions_trains_on_the_first_item(default_run,
                                                                small_run):
  for run in (default_run, small_run):
    (train,) = run.runs[F.TRAIN]["carol"]
    assert train[F.LABEL_ITEM_ID] == ["1"]
    for name in CONTEXT_FEATURES:
      assert train.get(name, []) == [], name
    assert F.HISTORY_ITEM_ID not in train


def test_own_items_partition_the_train_interactions(default_run, small_run):
  for run, size in ((default_run, 51), (small_run, 4)):
    for user, train in run.runs[F.TRAIN].items():
      # Own items, window after window: each train interaction exactly
      # once, in time order.
      timeline = TIMELINES[user][:-2]
      assert train_items(train) == timeline, user
      for context, label, _ in windows(train):
        # A window is consecutive train interactions, as many as fit.
        items = context + [label]
        assert len(items) == min(size, len(timeline)), (user, items)
        start = timeline.index(items[0])
        assert timeline[start:start + len(items)] == items, (user, items)
  # Own item counts = train counts (the popularity baseline).
  counts = collections.Counter(
      item for train in small_run.runs[F.TRAIN].values()
      for item in train_items(train))
  assert counts == collections.Counter({
      "1": 4, "2": 3, "3": 3, "4": 3, "5": 2, "6": 2, "7": 3, "8": 2,
      "9": 2, "10": 2, "11": 1, "12": 1, "13": 1, "14": 1, "15": 1})


@pytest.mark.parametrize("max_context_length, windows_, eval_context, test_context", [
    # Windows (start, end, own items from) over the 9 train interactions
    # x0..x8 (the default stride: half the context length, at least 1);
    # eval target x9, test target x10.
    (1, [(0, 2, 0)] + [(s, s + 2, 1) for s in range(1, 8)], [8], [9]),
    (2, [(0, 3, 0)] + [(s, s + 3, 2) for s in range(1, 7)], [7, 8], [8, 9]),
    (3, [(0, 4, 0)] + [(s, s + 4, 3) for s in range(1, 6)], [6, 7, 8],
     [7, 8, 9]),
    (4, [(0, 5, 0), (2, 7, 3), (4, 9, 3)], [5, 6, 7, 8], [6, 7, 8, 9]),
    (7, [(0, 8, 0), (1, 9, 7)], [2, 3, 4, 5, 6, 7, 8],
     [3, 4, 5, 6, 7, 8, 9]),
    (8, [(0, 9, 0)], [1, 2, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5, 6, 7, 8, 9]),
    (9, [(0, 9, 0)], [0, 1, 2, 3, 4, 5, 6, 7, 8],
     [1, 2, 3, 4, 5, 6, 7, 8, 9]),
])
def test_timeline_examples_train_windows(max_context_length, windows_,
                                         eval_context, test_context):
  # The per-user function alone (no Beam): 11 interactions x0..x10, given in
  # reverse order, with x4 and x5 sharing a timestamp (file offset decides).
  timestamps = [10, 20, 30, 40, 50, 50, 70, 80, 90, 100, 110]
  interactions = [
      sessions.Interaction(
          user_id=b"u", item_id=f"x{i}".encode(), order=(ts, i),
          rating=float(i), position=((float(i),), (2000 + i,), ()), user=())
      for i, ts in enumerate(timestamps)][::-1]
  out = {split: [] for split in F.SESSION_SPLITS}
  for split, example in sessions.timeline_examples(
      b"u", interactions, SessionConfig(max_context_length=max_context_length)):
    out[split].append(decode(example))
  names = lambda positions: [f"x{i}" for i in positions]
  got = sorted(windows(out[F.TRAIN]), key=lambda w: int(w[1][1:]))
  assert got == [(names(range(start, end - 1)), f"x{end - 1}", own_from)
                 for start, end, own_from in windows_]
  # The newest 4 of the 9 train interactions (at most half) are ranker
  # labels: x5..x8.
  assert sorted(e[F.RANKER_LABELS_FROM][0] for e in out[F.TRAIN]) == sorted(
      max(0, min(5, end) - start) for start, end, _ in windows_)
  assert labels(out[F.RANKER_TRAIN]) == names(range(5, 9))
  (eval_example,) = out[F.EVAL]
  (test_example,) = out[F.TEST]
  assert eval_example[F.LABEL_ITEM_ID] == ["x9"]
  assert eval_example[F.CONTEXT_ITEM_ID] == names(eval_context)
  assert eval_example[F.HISTORY_ITEM_ID] == names(range(9))
  assert eval_example[F.OWN_ITEMS_FROM] == [0]
  assert test_example[F.LABEL_ITEM_ID] == ["x10"]
  assert test_example[F.CONTEXT_ITEM_ID] == names(test_context)
  assert test_example[F.HISTORY_ITEM_ID] == names(range(10))


def _targets(count, context_length, stride):
  """{train interaction index: the indices of the context it is predicted
  from} over every window of train_windows (an index may appear twice only
  if a window owned it twice: a failure)."""
  targets = {}
  for start, end, own_from in sessions.train_windows(count, context_length,
                                                     stride):
    assert 0 <= start < end <= count and own_from <= end - start - 1
    assert end - start == min(count, context_length + 1)
    for index in range(start + max(own_from, 1), end):
      assert index not in targets, (count, context_length, stride, index)
      targets[index] = list(range(start, index))
  return targets


@pytest.mark.parametrize("count", [1, 2, 5, 51, 52, 53, 120, 401])
@pytest.mark.parametrize("context_length, stride", [
    (1, 1), (3, 2), (50, 1), (50, 25), (50, 50), (200, 100), (200, 57)])
def test_every_train_target_is_predicted_once_from_its_recent_history(
    count, context_length, stride):
  """Every train interaction but the first is a target exactly once, from
  the items just before it: all of them up to max_context_length when the
  history is that short or the stride is 1, else at least
  max_context_length + 1 - stride: never the few a chunk boundary leaves."""
  targets = _targets(count, context_length, stride)
  assert sorted(targets) == list(range(1, count))
  for index, context in targets.items():
    assert context == list(range(index - len(context), index))
    full = min(index, context_length)
    if stride == 1 or index <= context_length:
      assert len(context) == full, (index, context)
    else:
      assert min(full, context_length + 1 - stride) <= len(context) <= full


# --- Eval and test contexts ---------------------------------------------------------

def test_eval_and_test_contexts_are_cut_histories_are_not(small_run):
  # With max_context_length 3 the context is cut, the history never is; the
  # test history includes the eval item.
  runs = small_run.runs
  got_eval, got_test = {}, {}
  for user in TIMELINES:
    (eval_example,) = runs[F.EVAL][user]
    (test_example,) = runs[F.TEST][user]
    got_eval[user] = (eval_example[F.CONTEXT_ITEM_ID],
                      eval_example[F.LABEL_ITEM_ID][0],
                      eval_example[F.HISTORY_ITEM_ID])
    got_test[user] = (test_example[F.CONTEXT_ITEM_ID],
                      test_example[F.LABEL_ITEM_ID][0],
                      test_example[F.HISTORY_ITEM_ID])
  assert got_eval == SMALL_EVAL
  assert got_test == SMALL_TEST


def test_eval_and_test_contexts_within_max_context_length(default_run):
  # max_context_length 50: the context is the whole earlier timeline.
  for user, timeline in TIMELINES.items():
    (eval_example,) = default_run.runs[F.EVAL][user]
    (test_example,) = default_run.runs[F.TEST][user]
    assert eval_example[F.CONTEXT_ITEM_ID] == timeline[:-2], user
    assert eval_example[F.HISTORY_ITEM_ID] == timeline[:-2], user
    assert test_example[F.CONTEXT_ITEM_ID] == timeline[:-1], user
    assert test_example[F.HISTORY_ITEM_ID] == timeline[:-1], user


# --- Context features ---------------------------------------------------------------

def test_context_genre_slots_truncate_and_pad(default_run, small_run):
  # Every example: max_item_genres slots per context item.
  for run, slots in ((default_run, 3), (small_run, 2)):
    for split in F.SPLITS:
      for examples in run.runs[split].values():
        for e in examples:
          assert len(e.get(F.CONTEXT_GENRE, [])) == slots * len(
              e.get(F.CONTEXT_ITEM_ID, [])), e

  # 3 slots. alice, test: context 1..5; item 4 has no genres.
  (test,) = default_run.runs[F.TEST]["alice"]
  assert test[F.CONTEXT_GENRE] == [
      "Action", "Crime", "",
      "Animation", "Children's", "Comedy",
      "Drama", "", "",
      "", "", "",
      "Horror", "Sci-Fi", ""]
  # frank, train: item 15 has 4 genres, "Musical" does not fit.
  (train,) = default_run.runs[F.TRAIN]["frank"]
  assert train[F.CONTEXT_ITEM_ID] == [
      "15", "4", "6", "3", "2", "1", "5", "7", "14"]
  assert train[F.CONTEXT_GENRE] == [
      "Animation", "Children's", "Comedy",
      "", "", "",
      "Crime", "Drama", "Thriller",
      "Drama", "", "",
      "Animation", "Children's", "Comedy",
      "Action", "Crime", "",
      "Horror", "Sci-Fi", "",
      "Sci-Fi", "", "",
      "Comedy", "Fantasy", ""]

  # 2 slots. frank's windows: context 15, 4, 6 | 6, 3, 2.
  first, second, _, _ = small_run.runs[F.TRAIN]["frank"]
  assert first[F.CONTEXT_GENRE] == ["Animation", "Children's", "", "",
                                    "Crime", "Drama"]
  assert second[F.CONTEXT_ITEM_ID] == ["6", "3", "2"]
  assert second[F.CONTEXT_GENRE] == [
      "Crime", "Drama", "Drama", "", "Animation", "Children's"]
  # bob, eval: context 7, 8, 9; a genre repeated across items is kept.
  (eval_example,) = small_run.runs[F.EVAL]["bob"]
  assert eval_example[F.CONTEXT_GENRE] == [
      "Sci-Fi", "", "Horror", "Thriller", "Action", "Horror"]
  # alice, test: context 3, 4, 5.
  (test,) = small_run.runs[F.TEST]["alice"]
  assert test[F.CONTEXT_GENRE] == ["Drama", "", "", "", "Horror", "Sci-Fi"]


def test_context_ratings_and_years_align_with_items(default_run, small_run):
  for run in (default_run, small_run):
    for split in F.SPLITS:
      for user, examples in run.runs[split].items():
        for e in examples:
          context = e.get(F.CONTEXT_ITEM_ID, [])
          assert e.get(F.CONTEXT_RATING, []) == [
              RATING_OF[(user, item)] for item in context]
          assert e.get(F.CONTEXT_YEAR, []) == [
              MOVIES[item].year or 0 for item in context]
  # Spelled out: alice's test context 1..5, item 3 has no year.
  (test,) = default_run.runs[F.TEST]["alice"]
  assert test[F.CONTEXT_RATING] == [5.0, 2.0, 3.0, 4.5, 4.0]
  assert test[F.CONTEXT_YEAR] == [1995, 1995, 0, 2001, 1979]
  # frank's second window with max_context_length 3: context 6, 3, 2.
  second = small_run.runs[F.TRAIN]["frank"][1]
  assert second[F.CONTEXT_RATING] == [5.0, 2.0, 4.0]
  assert second[F.CONTEXT_YEAR] == [1996, 0, 1995]


def test_label_carries_its_own_rating_year_and_genres(default_run, small_run):
  label_genre = F.label_feature(F.CONTEXT_GENRE)
  for run, slots in ((default_run, 3), (small_run, 2)):
    for split in F.SPLITS:
      for user, examples in run.runs[split].items():
        for e in examples:
          (label,) = e[F.LABEL_ITEM_ID]
          assert e[F.LABEL_RATING] == [RATING_OF[(user, label)]]
          assert e[F.label_feature(F.CONTEXT_YEAR)] == [
              MOVIES[label].year or 0]
          genres = list(MOVIES[label].genres[:slots])
          assert e[label_genre] == genres + [""] * (slots - len(genres))
  # Spelled out: bob's test target 11 (rated 1.0), frank's eval target 9.
  (test,) = default_run.runs[F.TEST]["bob"]
  assert (test[F.LABEL_ITEM_ID], test[F.LABEL_RATING]) == (["11"], [1.0])
  (evaluated,) = small_run.runs[F.EVAL]["frank"]
  assert (evaluated[F.LABEL_ITEM_ID], evaluated[F.LABEL_RATING]) == (
      ["9"], [4.5])


def test_user_features_carried_when_present(default_run, small_run):
  for run in (default_run, small_run):
    for split in F.SPLITS:
      for e in run.runs[split]["bob"]:
        assert e[F.USER_GENDER] == ["M"]
        assert e[F.USER_AGE] == [56]
        assert e[F.USER_OCCUPATION] == ["technician"]
        assert e[F.USER_ZIPCODE] == ["T8H1N"]
      for e in run.runs[split]["alice"] + run.runs[split]["erin"]:
        assert (e[F.USER_GENDER], e[F.USER_AGE], e[F.USER_OCCUPATION],
                e[F.USER_ZIPCODE]) == (["F"], [25], ["12"], ["98107-2117"])
      for e in run.runs[split]["frank"]:
        assert (e[F.USER_GENDER], e[F.USER_AGE], e[F.USER_OCCUPATION],
                e[F.USER_ZIPCODE]) == (["M"], [35], ["7"], ["55455"])
      for e in run.runs[split]["carol"]:
        assert not set(F.USER_FEATURES) & set(e), e


# --- Filters and counters -------------------------------------------------------------

def test_short_users_are_dropped(default_run):
  for split in F.SPLITS:
    assert "dave" not in default_run.runs[split]


def test_counters(default_run, small_run):
  # Kept: alice 6, bob 6, carol 3, erin 14, frank 12; dave (2) dropped.
  common = {"users": 5, "short_users_dropped": 1,
            "short_user_interactions_dropped": 2,
            "train_interactions": 4 + 4 + 1 + 12 + 10,
            "eval_examples": 5, "test_examples": 5,
            # The newest 10 train interactions, at most half: alice 2 of 4,
            # bob 2 of 4, carol 0 of 1, erin 6 of 12, frank 5 of 10.
            "ranker_train_examples": 2 + 2 + 0 + 6 + 5}
  assert default_run.counters == {**common, "train_examples": 5,
                                  "train_context_repeats": 0}
  # erin's 4 newer windows and frank's 3 repeat 2 items each.
  assert small_run.counters == {**common,
                                "train_examples": 1 + 1 + 1 + 5 + 4,
                                "train_context_repeats": 2 * (4 + 3)}


def test_min_timeline_length_and_min_rating(tmp_path):
  raw = serialize(ALL_RATINGS, USERS)
  # min_rating 4: alice keeps 1 (5.0), 4 (4.5), 5 (4.0); bob keeps 8, 9, 12
  # (10 is rated 2, 7 is rated 3, 11 is rated 1); carol keeps 1 and 13 (2 < 3:
  # dropped); dave keeps both (2: dropped); erin keeps 4, 5, 9, 10, 14;
  # frank keeps 15, 6, 2, 7, 14, 9.
  examples, catalog, counters = run_sessionize(
      str(tmp_path / "min_rating"), raw, SessionConfig(min_rating=4.0))
  runs = by_user(examples)
  for split in F.SPLITS:
    assert set(runs[split]) == {"alice", "bob", "erin", "frank"}, split
  assert timeline_of(runs, "alice") == ["1", "4", "5"]
  assert windows(runs[F.TRAIN]["alice"]) == [([], "1", 0)]
  assert timeline_of(runs, "bob") == ["8", "9", "12"]
  assert windows(runs[F.TRAIN]["bob"]) == [([], "8", 0)]
  assert timeline_of(runs, "erin") == ["4", "5", "9", "10", "14"]
  assert windows(runs[F.TRAIN]["erin"]) == [(["4", "5"], "9", 0)]
  (test,) = runs[F.TEST]["erin"]
  assert test[F.CONTEXT_ITEM_ID] == ["4", "5", "9", "10"]
  assert timeline_of(runs, "frank") == ["15", "6", "2", "7", "14", "9"]
  assert windows(runs[F.TRAIN]["frank"]) == [(["15", "6", "2"], "7", 0)]
  for split in F.SPLITS:
    for e in sum(runs[split].values(), []):
      assert all(r >= 4.0 for r in e.get(F.CONTEXT_RATING, []))
  # The catalog still lists every item of the data.
  assert set(catalog) == set(MOVIES)
  assert counters == {
      "users": 4, "short_users_dropped": 2,
      "short_user_interactions_dropped": 2 + 2,
      "low_rating_interactions_dropped": 3 + 3 + 1 + 0 + 9 + 6,
      "train_interactions": 1 + 1 + 3 + 4, "train_examples": 4,
      "train_context_repeats": 0, "eval_examples": 4, "test_examples": 4,
      "ranker_train_examples": 0 + 0 + 1 + 2}

  # min_timeline_length 12: frank (exactly 12) and erin (14) are kept.
  examples, _, counters = run_sessionize(
      str(tmp_path / "min_length"), raw, SessionConfig(min_timeline_length=12))
  runs = by_user(examples)
  for split in F.SPLITS:
    assert set(runs[split]) == {"erin", "frank"}, split
  assert windows(runs[F.TRAIN]["frank"]) == DEFAULT_TRAIN["frank"]
  assert windows(runs[F.TRAIN]["erin"]) == DEFAULT_TRAIN["erin"]
  assert counters == {
      "users": 2, "short_users_dropped": 4,
      "short_user_interactions_dropped": 6 + 6 + 3 + 2,
      "train_interactions": 12 + 10, "train_examples": 2,
      "train_context_repeats": 0, "eval_examples": 2, "test_examples": 2,
      "ranker_train_examples": 6 + 5}


def test_catalog_maps_items_to_title_genres_year(default_run):
  catalog = default_run.catalog
  # Every item of the data, including those only dave (dropped) rated.
  assert set(catalog) == set(MOVIES)
  for item_id, movie in MOVIES.items():
    assert catalog[item_id] == {
        "title": movie.title, "genres": list(movie.genres),
        "year": movie.year}
  assert catalog["3"]["year"] is None
  assert catalog["4"]["genres"] == []
  # All genres are kept in the catalog, even beyond the context slots.
  assert catalog["15"]["genres"] == [
      "Animation", "Children's", "Comedy", "Musical"]


# --- Slice features -----------------------------------------------------------

# Train counts of the default run, by hand (31 train interactions): item 1: 4;
# 2, 3, 4, 7: 3; 10, 5, 6, 8, 9: 2; 11..15: 1. The head (more frequent items
# before them make < 50% of the interactions) is 1, 2, 3, 4, 7; the torso
# (< 80%) 10, 5, 6, 8, 9; the rest is tail. Per user (eval, test) targets.
TARGET_TIERS = {"alice": ("torso", "torso"),   # 5, 6
                "bob": ("tail", "tail"),       # 12, 11
                "carol": ("tail", "tail"),     # 14, 13
                "erin": ("tail", "tail"),      # 13, 14
                "frank": ("torso", "tail")}    # 9, 11
# History lengths before the (eval, test) targets: n - 2 and n - 1.
HISTORY_BUCKETS = {"alice": ("<10", "<10"), "bob": ("<10", "<10"),
                   "carol": ("<10", "<10"), "erin": ("10-19", "10-19"),
                   "frank": ("10-19", "10-19")}
DEMOGRAPHICS = {"alice": ("F", "25-34"), "erin": ("F", "25-34"),
                "bob": ("M", "56+"), "frank": ("M", "35-44")}


def test_eval_and_test_examples_carry_their_slices(default_run):
  for user, tiers in TARGET_TIERS.items():
    for split, tier, bucket in zip((F.EVAL, F.TEST), tiers,
                                   HISTORY_BUCKETS[user]):
      (example,) = default_run.runs[split][user]
      assert example[slices.TARGET_POPULARITY] == [tier], (user, split)
      assert example[slices.HISTORY_LENGTH] == [bucket], (user, split)
      if user in DEMOGRAPHICS:
        gender, age = DEMOGRAPHICS[user]
        assert example[slices.USER_GENDER] == [gender]
        assert example[slices.USER_AGE] == [age]
      else:  # carol has no user data: no demographic slice
        assert slices.USER_GENDER not in example
        assert slices.USER_AGE not in example
  for examples in default_run.runs[F.TRAIN].values():
    for example in examples:
      assert not set(slices.FEATURES) & set(example)


def test_targets_never_trained_on_are_unseen():
  tiers = {b"1": slices.HEAD}
  example = tf.train.Example()
  example.features.feature[F.LABEL_ITEM_ID].bytes_list.value.append(b"99")
  out = tf.train.Example.FromString(sessions.with_target_popularity(
      example.SerializeToString(), tiers))
  assert out.features.feature[slices.TARGET_POPULARITY].bytes_list.value == [
      b"unseen"]
