"""How Sessionize turns raw interactions into session examples (the Beam
transform its executor runs).

Per user (grouped in Beam, through disk with `group_bucket_bytes`), a data
set's interactions are put in order (components/lib/session_data.py: MovieLens
by timestamp, ties in file order; Ali-CCP's clicks in file order). Splits
follow ../shared/PROTOCOL.md: the last interaction is the test target, the
one before it the eval target, everything earlier trains. An example is a
context (up to `max_context_length` items, oldest first, each with the data
set's position features: MovieLens its rating, year and `max_item_genres`
genre slots) and a label (the next item):

* eval and test: one example each per user, the context being the items just
  before the target; they also carry the whole earlier history, which the
  metrics exclude from the ranking (filter-seen), and the `slice_*` features
  the evaluation is sliced by (components/lib/slices.py): the history's length
  bucket, the user's demographics and, once every user's train interactions
  are counted, the target's train popularity tier.
* every example also carries the label's own position features
  (`label_rating`, `label_year`, ...): the rating model's target and its
  item's attributes.
* train: the user's train interactions cut into consecutive chunks of
  `max_context_length + 1` (the last chunk ending at the last train
  interaction); a chunk's last item is its label and the rest its context.
  The Trainer predicts every item of a chunk from the ones before it
  (causal), so one example carries up to `max_context_length` predictions
  instead of materializing one window per position; the chunks partition the
  train interactions, so their items counted once each are the train counts
  the popularity baseline ranks by.

Beside the examples the component writes their schema (derived from the one
feature spec below, so it cannot drift from what is written) and the item
catalog (MovieLens: title, genres, year) that ships with the pushed model.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
import tensorflow as tf

from components.lib import disk_group
from components.lib import features as F
from components.lib import slices
from components.lib.session_data import (MOVIELENS, MOVIELENS_DATA,
                                         Interaction, SessionData,
                                         session_data)
from components.lib.settings import SessionConfig, SliceConfig

NAMESPACE = "sessionize"
CATALOG = "catalog"
INTERACTIONS = "interactions"
TRAIN_COUNTS = "train_counts"


def feature_spec(data: SessionData = MOVIELENS_DATA) -> Dict[str, Any]:
  """The tf.Example spec of a data set's session examples (also their
  schema): the ids, then its position and user features."""
  var = tf.io.VarLenFeature
  dtypes = {"STRING": tf.string, "INT": tf.int64, "FLOAT": tf.float32}
  return {
      F.USER_ID: tf.io.FixedLenFeature([], tf.string),
      F.LABEL_ITEM_ID: tf.io.FixedLenFeature([], tf.string),
      F.CONTEXT_ITEM_ID: var(tf.string),
      **{p.name: var(dtypes[p.type]) for p in data.position_features},
      **{F.label_feature(p.name): var(dtypes[p.type])
         for p in data.position_features},
      F.HISTORY_ITEM_ID: var(tf.string),
      **{name: var(dtypes[kind]) for name, kind in data.user_features},
      **{name: var(tf.string) for name in slices.FEATURES},
  }


_KIND = {tf.string: "bytes_list", tf.float32: "float_list",
         tf.int64: "int64_list"}


def _example(features: Dict[str, Iterable],
             list_of: Dict[str, str]) -> tf.train.Example:
  """A tf.train.Example with the value types the session spec gives."""
  example = tf.train.Example()
  feature_map = example.features.feature
  for name, values in features.items():
    value_list = getattr(feature_map[name], list_of[name])
    value_list.SetInParent()  # typed even when empty
    value_list.value.extend(values)
  return example


def _feature_values(serialized: bytes, names: Sequence[str]) -> Dict[str, Any]:
  """{name: values} of the named features in a serialized tf.train.Example."""
  feature_map = tf.train.Example.FromString(serialized).features.feature
  values = {}
  # Looking up the known names is faster than iterating the proto map.
  for name in names:
    if name in feature_map:
      feature = feature_map[name]
      kind = feature.WhichOneof("kind")
      if kind:
        values[name] = getattr(feature, kind).value
  return values


class ParseRaw(beam.DoFn):
  """Raw tf.Example -> (user id, Interaction as a plain tuple); and, once per
  item and bundle, (item id, catalog entry) on the CATALOG output. Examples
  that are no interaction (Ali-CCP: not clicked) are counted."""

  def __init__(self, dataset: str):
    super().__init__()
    self._dataset = dataset

  def setup(self):
    self._data = session_data(self._dataset)
    if self._data.skipped:
      self._skipped = Metrics.counter(NAMESPACE, self._data.skipped)

  def start_bundle(self):
    self._catalogued = set()

  def process(self, serialized: bytes):
    values = _feature_values(serialized, self._data.raw_features)
    interaction = self._data.interaction(values)
    if interaction is None:
      self._skipped.inc()
      return
    # A plain tuple: what a grouping spilled to disk can encode.
    yield interaction.user_id, tuple(interaction)
    if interaction.item_id not in self._catalogued:
      self._catalogued.add(interaction.item_id)
      yield beam.pvalue.TaggedOutput(CATALOG, (
          interaction.item_id.decode("utf-8"),
          self._data.catalog_entry(values)))


def _position_values(interactions: List[Interaction], index: int,
                     feature, slots: int) -> list:
  """One position feature's values over interactions, slots padded."""
  values = []
  for i in interactions:
    given = i.position[index]
    if feature.slotted:
      kept = list(given[:slots])
      values += kept + [feature.missing] * (slots - len(kept))
    else:
      values.append(given[0] if given else feature.missing)
  return values


def _session_example(data: SessionData, list_of: Dict[str, str],
                     user_id: bytes, user: Dict[str, list],
                     context: List[Interaction], label: Interaction,
                     history: Optional[List[Interaction]],
                     slots: int,
                     slice_values: Optional[Dict[str, bytes]] = None
                     ) -> tf.train.Example:
  features = {
      F.USER_ID: [user_id],
      F.LABEL_ITEM_ID: [label.item_id],
      F.CONTEXT_ITEM_ID: [i.item_id for i in context],
      **user,
      **{name: [value] for name, value in (slice_values or {}).items()},
  }
  for index, feature in enumerate(data.position_features):
    features[feature.name] = _position_values(context, index, feature, slots)
    features[F.label_feature(feature.name)] = _position_values(
        [label], index, feature, slots)
  if history is not None:
    features[F.HISTORY_ITEM_ID] = [i.item_id for i in history]
  return _example(features, list_of)


def timeline_examples(user_id: bytes, interactions: Iterable[Interaction],
                      params: SessionConfig,
                      data: SessionData = MOVIELENS_DATA,
                      slice_params: SliceConfig = SliceConfig()):
  """Yields (split, tf.train.Example) for one user's timeline.

  Interactions below min_rating are left out; a user left with fewer than
  min_timeline_length interactions yields nothing. Both are counted. Eval
  and test examples carry every slice feature but the target's popularity
  (which needs every user's train counts: with_target_popularity).
  """
  timeline = sorted(interactions, key=lambda i: i.order)
  if params.min_rating is not None:
    kept = [i for i in timeline if i.rating >= params.min_rating]
    Metrics.counter(NAMESPACE, "low_rating_interactions_dropped").inc(
        len(timeline) - len(kept))
    timeline = kept
  length = len(timeline)
  if length < params.min_timeline_length:
    Metrics.counter(NAMESPACE, "short_users_dropped").inc()
    Metrics.counter(NAMESPACE, "short_user_interactions_dropped").inc(length)
    return
  Metrics.counter(NAMESPACE, "users").inc()
  user = dict(timeline[0].user)
  list_of = {name: _KIND[spec.dtype]
             for name, spec in feature_spec(data).items()}

  user_slices = data.user_slices(user)

  def example(context, label, history, slice_values=None):
    return _session_example(data, list_of, user_id, user, context, label,
                            history, params.max_item_genres, slice_values)

  context_length = params.max_context_length
  train_end = length - 2
  Metrics.counter(NAMESPACE, "train_interactions").inc(train_end)
  for end in range(train_end, 0, -(context_length + 1)):
    chunk = timeline[max(0, end - context_length - 1):end]
    Metrics.counter(NAMESPACE, "train_examples").inc()
    yield F.TRAIN, example(chunk[:-1], chunk[-1], None)
  for split, position in ((F.EVAL, length - 2), (F.TEST, length - 1)):
    Metrics.counter(NAMESPACE, f"{split}_examples").inc()
    slice_values = {slices.HISTORY_LENGTH: slices.history_length_bucket(
        position, slice_params.history_length_edges).encode(), **user_slices}
    yield split, example(timeline[max(0, position - context_length):position],
                         timeline[position], timeline[:position], slice_values)


def with_target_popularity(serialized: bytes, tiers: Dict[bytes, str]) -> bytes:
  """An eval or test example with its target's popularity tier."""
  example = tf.train.Example.FromString(serialized)
  feature = example.features.feature
  label = feature[F.LABEL_ITEM_ID].bytes_list.value[0]
  feature[slices.TARGET_POPULARITY].bytes_list.value.append(
      tiers.get(label, slices.UNSEEN).encode())
  return example.SerializeToString()


class _SerializedTimelines(beam.DoFn):
  """timeline_examples as serialized examples, one output per split, and
  the user's train counts per item on TRAIN_COUNTS (train examples
  partition the train interactions: their items, each counted once)."""

  def __init__(self, params: SessionConfig, dataset: str,
               slice_params: SliceConfig):
    super().__init__()
    self._params, self._dataset = params, dataset
    self._slice_params = slice_params

  def setup(self):
    self._data = session_data(self._dataset)

  def process(self, user):
    user_id, grouped = user
    interactions = [Interaction(*values) for values in grouped]
    counts: Dict[bytes, int] = {}
    for split, example in timeline_examples(user_id, interactions,
                                            self._params, self._data,
                                            self._slice_params):
      if split == F.TRAIN:
        feature = example.features.feature
        for item in (list(feature[F.CONTEXT_ITEM_ID].bytes_list.value)
                     + list(feature[F.LABEL_ITEM_ID].bytes_list.value)):
          counts[item] = counts.get(item, 0) + 1
      yield beam.pvalue.TaggedOutput(split, example.SerializeToString())
    for item_and_count in counts.items():
      yield beam.pvalue.TaggedOutput(TRAIN_COUNTS, item_and_count)


def _any(values: Iterable):
  """Picks one of equal values (all interactions of an item carry its
  metadata)."""
  return next(iter(values))


@beam.ptransform_fn
def SessionizeExamples(raw: beam.PCollection, params: SessionConfig,  # pylint: disable=invalid-name
                       dataset: str = MOVIELENS, spill_dir: str = "",
                       num_buckets: int = 0,
                       slice_params: SliceConfig = SliceConfig()):
  """Serialized raw examples -> {split: serialized session examples,
  CATALOG: one JSON object {item id: catalog entry}}.

  With `num_buckets` the grouping by user spills to files under `spill_dir`
  (components/lib/disk_group.py; the caller deletes it), else Beam's GroupByKey.
  """
  parsed = raw | "Parse" >> beam.ParDo(ParseRaw(dataset)).with_outputs(
      CATALOG, main=INTERACTIONS)
  examples = (
      disk_group.group_by_key(parsed[INTERACTIONS], spill_dir, num_buckets,
                              "GroupByUser")
      | "Timelines" >> beam.ParDo(
          _SerializedTimelines(params, dataset, slice_params)).with_outputs(
              TRAIN_COUNTS, *F.SPLITS))
  tiers = (examples[TRAIN_COUNTS]
           | "TrainCounts" >> beam.CombinePerKey(sum)
           | "CountList" >> beam.combiners.ToList()
           | "Tiers" >> beam.Map(slices.popularity_tiers,
                                 slice_params.popularity_shares))
  result = {F.TRAIN: examples[F.TRAIN]}
  for split in (F.EVAL, F.TEST):
    result[split] = examples[split] | f"Popularity[{split}]" >> beam.Map(
        with_target_popularity, beam.pvalue.AsSingleton(tiers))
  result[CATALOG] = (
      parsed[CATALOG]
      | "OnePerItem" >> beam.CombinePerKey(_any)
      | "ToList" >> beam.combiners.ToList()
      | "Json" >> beam.Map(lambda entries: json.dumps(
          dict(entries), ensure_ascii=False, sort_keys=True)))
  return result


