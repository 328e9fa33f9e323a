"""Sessionize: per-user timelines -> next-item examples in leave-last-out splits.

Per user (grouped in Beam, through disk with `group_bucket_bytes`), a data
set's interactions are put in order (components/session_data.py: MovieLens
by timestamp, ties in file order; Ali-CCP's clicks in file order). Splits
follow ../shared/PROTOCOL.md: the last interaction is the test target, the
one before it the eval target, everything earlier trains. An example is a
context (up to `max_context_length` items, oldest first, each with the data
set's position features: MovieLens its rating, year and `max_item_genres`
genre slots) and a label (the next item):

* eval and test: one example each per user, the context being the items just
  before the target; they also carry the whole earlier history, which the
  metrics exclude from the ranking (filter-seen), and the `slice_*` features
  the evaluation is sliced by (components/slices.py): the history's length
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

import dataclasses
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from absl import logging
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
import tensorflow as tf
from tensorflow_transform.tf_metadata import schema_utils
from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components import disk_group
from components import features as F
from components import slices
from components.anomalies import raise_on_anomalies
from components.artifacts import ItemCatalog
from components.session_data import (MOVIELENS, MOVIELENS_DATA, Interaction,
                                     SessionData, session_data)

NAMESPACE = "sessionize"
CATALOG_FILE = "items.json"
SCHEMA_FILE = "schema.pbtxt"
REPORT_FILE = "sessionize_report.json"
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


@dataclasses.dataclass(frozen=True)
class SessionParams:
  min_rating: Optional[float] = None
  min_timeline_length: int = 3
  max_context_length: int = 50
  max_item_genres: int = 3

  def __post_init__(self):
    # Fewer than 3 interactions leave no train, eval and test target each.
    if self.min_timeline_length < 3:
      raise ValueError(f"min_timeline_length must be >= 3, got "
                       f"{self.min_timeline_length}")
    if self.max_context_length < 1 or self.max_item_genres < 1:
      raise ValueError("max_context_length and max_item_genres must be >= 1")


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
                      params: SessionParams,
                      data: SessionData = MOVIELENS_DATA,
                      slice_params: slices.SliceParams = slices.SliceParams()):
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

  def __init__(self, params: SessionParams, dataset: str,
               slice_params: slices.SliceParams):
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
def SessionizeExamples(raw: beam.PCollection, params: SessionParams,  # pylint: disable=invalid-name
                       dataset: str = MOVIELENS, spill_dir: str = "",
                       num_buckets: int = 0,
                       slice_params: slices.SliceParams = slices.SliceParams()):
  """Serialized raw examples -> {split: serialized session examples,
  CATALOG: one JSON object {item id: catalog entry}}.

  With `num_buckets` the grouping by user spills to files under `spill_dir`
  (components/disk_group.py; the caller deletes it), else Beam's GroupByKey.
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


class Executor(base_beam_executor.BaseBeamExecutor):
  """Checks the validator's verdict, then sessionizes with Beam."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    if input_dict.get("anomalies"):
      raise_on_anomalies(artifact_utils.get_single_instance(
          input_dict["anomalies"]))
    params = SessionParams(**json.loads(exec_properties["session_config"]))
    slice_params = slices.SliceParams(**{
        name: tuple(value) for name, value in json.loads(
            exec_properties.get("slice_config") or "{}").items()})
    data = session_data(exec_properties.get("dataset") or MOVIELENS)
    raw_artifact = artifact_utils.get_single_instance(input_dict["examples"])
    raw_splits = artifact_utils.decode_split_names(raw_artifact.split_names)
    patterns = [os.path.join(artifact_utils.get_split_uri([raw_artifact], s), "*")
                for s in raw_splits]
    output = artifact_utils.get_single_instance(output_dict["sessions"])
    output.split_names = artifact_utils.encode_split_names(list(F.SPLITS))
    catalog = artifact_utils.get_single_instance(output_dict["catalog"])
    schema = artifact_utils.get_single_instance(output_dict["schema"])

    bucket_bytes = int(exec_properties.get("group_bucket_bytes") or 0)
    num_buckets = 0
    if bucket_bytes > 0:
      num_buckets = disk_group.buckets_for(
          sum(tf.io.gfile.stat(f).length for p in patterns
              for f in tf.io.gfile.glob(p)), bucket_bytes)
    spill_dir = os.path.join(output.uri, "_spill")

    pipeline = self._make_beam_pipeline()
    raw = (
        [pipeline | f"Read[{s}]" >> beam.io.ReadFromTFRecord(p)
         for s, p in zip(raw_splits, patterns)]
        | "Flatten" >> beam.Flatten())
    sessions = raw | "Sessionize" >> SessionizeExamples(  # pylint: disable=no-value-for-parameter
        params, data.name, spill_dir, num_buckets, slice_params)
    for split in F.SPLITS:
      _ = sessions[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
          os.path.join(artifact_utils.get_split_uri([output], split),
                       "data_tfrecord"),
          file_name_suffix=".gz")
    _ = sessions[CATALOG] | "WriteCatalog" >> beam.io.WriteToText(
        os.path.join(catalog.uri, CATALOG_FILE), shard_name_template="")
    result = pipeline.run()
    result.wait_until_finish()
    if tf.io.gfile.exists(spill_dir):
      tf.io.gfile.rmtree(spill_dir)

    counts = {
        c.key.metric.name: c.result for c in result.metrics().query(
            MetricsFilter().with_namespace(NAMESPACE))["counters"]}
    report = {name: int(counts.get(name, 0)) for name in (
        "users", "short_users_dropped", "short_user_interactions_dropped",
        "low_rating_interactions_dropped", "train_interactions",
        "train_examples", "eval_examples", "test_examples")
        + ((data.skipped,) if data.skipped else ())}
    with tf.io.gfile.GFile(os.path.join(catalog.uri, CATALOG_FILE)) as f:
      items = json.loads(f.read() or "{}")
    if any(p.slotted for p in data.position_features):
      # Genres beyond the slots are left out of the context (counted here).
      report["items_with_more_genres_than_slots"] = sum(
          len(item.get("genres") or ()) > params.max_item_genres
          for item in items.values())
    report["params"] = dataclasses.asdict(params)
    with tf.io.gfile.GFile(os.path.join(output.uri, REPORT_FILE), "w") as f:
      f.write(json.dumps(report, indent=2))
    for name, value in report.items():
      if isinstance(value, int):
        output.set_int_custom_property(name, value)
    logging.info("Sessionized: %s", report)
    if report["users"] == 0:
      raise ValueError(
          f"no user has at least {params.min_timeline_length} interactions"
          f"{'' if params.min_rating is None else ' rated >= %s' % params.min_rating};"
          f" nothing to train or evaluate on ({report})")
    io_utils.write_pbtxt_file(
        os.path.join(schema.uri, SCHEMA_FILE),
        schema_utils.schema_from_feature_spec(feature_spec(data)))


class SessionizeSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      "session_config": component_spec.ExecutionParameter(type=str),
      # slices.SliceParams as JSON (eval.history_length_edges, ...).
      "slice_config": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
      "dataset": component_spec.ExecutionParameter(type=str, optional=True),
      # data.group_bucket_bytes: 0 groups users with Beam's GroupByKey.
      "group_bucket_bytes": component_spec.ExecutionParameter(
          type=int, optional=True),
      # Digest of this project's code: a code change invalidates the cache.
      "code_version": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
  }
  INPUTS = {
      "examples": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      "anomalies": component_spec.ChannelParameter(
          type=standard_artifacts.ExampleAnomalies, optional=True),
  }
  OUTPUTS = {
      "sessions": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      "schema": component_spec.ChannelParameter(type=standard_artifacts.Schema),
      "catalog": component_spec.ChannelParameter(type=ItemCatalog),
  }


class Sessionize(base_beam_component.BaseBeamComponent):
  """Raw interactions -> `sessions` (train/eval/test next-item examples),
  their `schema` and the item `catalog`.

  `anomalies` (ExampleValidator's output) gates the run: any anomaly stops it
  here, before sessionization and training.
  """

  SPEC_CLASS = SessionizeSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, examples: types.BaseChannel, session_config: str,
               anomalies: Optional[types.BaseChannel] = None,
               dataset: str = MOVIELENS, group_bucket_bytes: int = 0,
               code_version: str = "", slice_config: str = ""):
    super().__init__(spec=SessionizeSpec(
        examples=examples,
        anomalies=anomalies,
        session_config=session_config,
        slice_config=slice_config,
        dataset=dataset,
        group_bucket_bytes=group_bucket_bytes,
        code_version=code_version,
        **{name: types.Channel(type=p.type)
           for name, p in SessionizeSpec.OUTPUTS.items()}))
