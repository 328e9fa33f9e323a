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
* train: windows of `max_context_length + 1` consecutive train
  interactions (train_windows): a user whose train interactions fit in one
  window gets one, holding them all; a longer history gets a window ending
  at the last train interaction and further windows sliding back over older
  ones by `train_stride` items, the oldest starting at the first. A window's
  last item is its label and the rest its context. The Trainer predicts the
  items of a window from the ones before it (causal), so one example carries
  up to `max_context_length` predictions instead of materializing one
  window per position. The items a window shares with the next older one
  are context only: `own_items_from` says where the window's own items
  start, and only those are targets. So every train interaction is the own
  item (and target) of exactly one window, predicted from at least
  `max_context_length + 1 - train_stride` items of its history (all of it
  when it is shorter), never from the few items a chunk boundary would leave
  it; and own items counted once each are the train counts the popularity
  baseline ranks by. The repeated context items are counted in the report.

Beside the examples the component writes their schema (derived from the one
feature spec below, so it cannot drift from what is written) and the item
catalog (MovieLens: title, genres, year) that ships with the pushed model.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

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
      F.OWN_ITEMS_FROM: tf.io.FixedLenFeature([], tf.int64),
      F.RANKER_LABELS_FROM: tf.io.FixedLenFeature([], tf.int64),
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
  """(span, raw tf.Example) -> (user id, Interaction as a plain tuple); and,
  once per item and bundle, (item id, (span, catalog entry)) on the CATALOG
  output. Examples that are no interaction (Ali-CCP: not clicked) are
  counted."""

  def __init__(self, dataset: str):
    super().__init__()
    self._dataset = dataset

  def setup(self):
    self._data = session_data(self._dataset)
    if self._data.skipped:
      self._skipped = Metrics.counter(NAMESPACE, self._data.skipped)

  def start_bundle(self):
    self._catalogued = set()

  def process(self, span_and_example: Tuple[int, bytes]):
    span, serialized = span_and_example
    values = _feature_values(serialized, self._data.raw_features)
    interaction = self._data.interaction(values, span)
    if interaction is None:
      self._skipped.inc()
      return
    # A plain tuple: what a grouping spilled to disk can encode.
    yield interaction.user_id, tuple(interaction)
    if (interaction.item_id, span) not in self._catalogued:
      self._catalogued.add((interaction.item_id, span))
      yield beam.pvalue.TaggedOutput(CATALOG, (
          interaction.item_id.decode("utf-8"),
          (span, self._data.catalog_entry(values))))


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
                     slots: int, own_from: int = 0,
                     slice_values: Optional[Dict[str, bytes]] = None,
                     ranker_from: Optional[int] = None
                     ) -> tf.train.Example:
  features = {
      F.USER_ID: [user_id],
      F.LABEL_ITEM_ID: [label.item_id],
      F.CONTEXT_ITEM_ID: [i.item_id for i in context],
      F.OWN_ITEMS_FROM: [own_from],
      F.RANKER_LABELS_FROM: [len(context) + 1 if ranker_from is None
                             else ranker_from],
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


def train_windows(count: int, context_length: int,
                  stride: int) -> List[Tuple[int, int, int]]:
  """(start, end, own items from) of the train windows over `count` train
  interactions, oldest first: [start, end) are the window's items (its
  last one the label), and its context items before index `own items from`
  repeat the previous window's items."""
  size = context_length + 1
  if count <= size:
    return [(0, count, 0)]
  starts = [0] + list(range(count - size, 0, -stride))[::-1]
  windows = [(0, size, 0)]
  for previous, start in zip(starts, starts[1:]):
    windows.append((start, start + size, previous + size - start))
  return windows


def own_items(example: tf.train.Example) -> List[bytes]:
  """A train example's own items (see train_windows): its context from
  `own_items_from` on, and its label."""
  feature = example.features.feature
  own_from = feature[F.OWN_ITEMS_FROM].int64_list.value[0]
  return (list(feature[F.CONTEXT_ITEM_ID].bytes_list.value)[own_from:]
          + list(feature[F.LABEL_ITEM_ID].bytes_list.value))


def timeline_examples(user_id: bytes, interactions: Iterable[Interaction],
                      params: SessionConfig,
                      data: SessionData = MOVIELENS_DATA,
                      slice_params: SliceConfig = SliceConfig(),
                      forward_span: Optional[int] = None):
  """Yields (split, tf.train.Example) for one user's timeline.

  Interactions below min_rating are left out; a user left with fewer than
  min_timeline_length interactions yields nothing. Both are counted. Eval
  and test examples carry every slice feature but the target's popularity
  (which needs every user's train counts: with_target_popularity).

  With `forward_span` (the newest span of several), the user's first
  interaction in that span is also a FORWARD example, with the history
  before it, when there is one (a user new in that span is counted).

  The newest `ranker_labels_per_user` train interactions (at most half of
  them) are also RANKER_TRAIN examples, with the history before each; the
  train windows mark where they start (F.RANKER_LABELS_FROM).
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

  def example(context, label, history, own_from=0, slice_values=None,
              ranker_from=None):
    return _session_example(data, list_of, user_id, user, context, label,
                            history, params.max_item_genres, own_from,
                            slice_values, ranker_from)

  context_length = params.max_context_length
  train_end = length - 2
  ranker_from = train_end - min(params.ranker_labels_per_user, train_end // 2)
  Metrics.counter(NAMESPACE, "train_interactions").inc(train_end)
  for start, end, own_from in train_windows(train_end, context_length,
                                            params.window_stride()):
    window = timeline[start:end]
    Metrics.counter(NAMESPACE, "train_examples").inc()
    Metrics.counter(NAMESPACE, "train_context_repeats").inc(own_from)
    yield F.TRAIN, example(window[:-1], window[-1], None, own_from,
                           ranker_from=max(0, min(ranker_from, end) - start))
  targets = [(F.EVAL, length - 2), (F.TEST, length - 1)]
  targets += [(F.RANKER_TRAIN, p) for p in range(ranker_from, train_end)]
  if forward_span is not None:
    first = next((position for position, i in enumerate(timeline)
                  if i.span == forward_span), None)
    if first == 0:
      Metrics.counter(NAMESPACE, "forward_new_users").inc()
    elif first is not None:
      targets.append((F.FORWARD, first))
  for split, position in targets:
    Metrics.counter(NAMESPACE, f"{split}_examples").inc()
    slice_values = {slices.HISTORY_LENGTH: slices.history_length_bucket(
        position, slice_params.history_length_edges).encode(), **user_slices}
    yield split, example(timeline[max(0, position - context_length):position],
                         timeline[position], timeline[:position],
                         slice_values=slice_values)


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
  the user's train counts per item on TRAIN_COUNTS (the train examples' own
  items: each train interaction once)."""

  def __init__(self, params: SessionConfig, dataset: str,
               slice_params: SliceConfig, forward_span: Optional[int]):
    super().__init__()
    self._params, self._dataset = params, dataset
    self._slice_params = slice_params
    self._forward_span = forward_span

  def setup(self):
    self._data = session_data(self._dataset)

  def process(self, user):
    user_id, grouped = user
    interactions = [Interaction(*values) for values in grouped]
    counts: Dict[bytes, int] = {}
    for split, example in timeline_examples(user_id, interactions,
                                            self._params, self._data,
                                            self._slice_params,
                                            self._forward_span):
      if split == F.TRAIN:
        for item in own_items(example):
          counts[item] = counts.get(item, 0) + 1
      yield beam.pvalue.TaggedOutput(split, example.SerializeToString())
    for item_and_count in counts.items():
      yield beam.pvalue.TaggedOutput(TRAIN_COUNTS, item_and_count)


def _newest(spans_and_entries: Iterable):
  """An item's catalog entry from its newest span (every interaction of an
  item in one span carries the same metadata; a later span's catalog
  file may correct it)."""
  return max(spans_and_entries, key=lambda pair: pair[0])


@beam.ptransform_fn
def SessionizeExamples(raw: beam.PCollection, params: SessionConfig,  # pylint: disable=invalid-name
                       dataset: str = MOVIELENS, spill_dir: str = "",
                       num_buckets: int = 0,
                       slice_params: SliceConfig = SliceConfig(),
                       forward_span: Optional[int] = None):
  """(span, serialized raw example) pairs -> {split: serialized session
  examples (F.SESSION_SPLITS; FORWARD empty without `forward_span`),
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
          _SerializedTimelines(params, dataset, slice_params,
                               forward_span)).with_outputs(
              TRAIN_COUNTS, *F.SESSION_SPLITS))
  tiers = (examples[TRAIN_COUNTS]
           | "TrainCounts" >> beam.CombinePerKey(sum)
           | "CountList" >> beam.combiners.ToList()
           | "Tiers" >> beam.Map(slices.popularity_tiers,
                                 slice_params.popularity_shares))
  result = {F.TRAIN: examples[F.TRAIN]}
  for split in (F.EVAL, F.TEST, F.FORWARD, F.RANKER_TRAIN):
    result[split] = examples[split] | f"Popularity[{split}]" >> beam.Map(
        with_target_popularity, beam.pvalue.AsSingleton(tiers))
  result[CATALOG] = (
      parsed[CATALOG]
      | "OnePerItem" >> beam.CombinePerKey(_newest)
      | "ToList" >> beam.combiners.ToList()
      | "Json" >> beam.Map(lambda entries: json.dumps(
          {item: entry for item, (_, entry) in entries}, ensure_ascii=False,
          sort_keys=True)))
  return result


