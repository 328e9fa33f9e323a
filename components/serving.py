"""The exported SavedModel and its signatures.

* `serving_default` takes a raw context as an app has it: one input per
  feature of the feature config, named as in the session examples (item ids
  as strings with '' for padding, ratings, years, genre slots, user
  attributes), and returns the top-K raw item ids and scores, the context's
  own items excluded; an empty context gets the most popular items. Strings
  are looked up in constant string-keyed hash tables built from TFT's
  vocabularies and numbers bucketized arithmetically, so the caller needs no
  vocabulary file and the function converts to TFLite with builtin ops only.
* `evaluate` takes serialized session examples, applies the TFT graph that
  training used, and returns scores over the whole catalog with the user's
  history excluded (filter-seen), beside the most-popular baseline's scores
  under the same exclusion: TFMA ranks both with the same metrics.
* `transform_features` gives TFMA the transformed label.
"""
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import feature_config as fc
from components import features as F
from components.model.dual_encoder import DualEncoder
from components.model.ranking import exclude_items
from components.transform import counts_vocabulary

SCORES = "scores"
POPULARITY_SCORES = "popularity_scores"
TOP_ITEM_IDS = "top_item_ids"
TOP_SCORES = "top_scores"
_DTYPES = {"STRING": tf.string, "INT": tf.int32, "FLOAT": tf.float32}


def model_feature_names(config: fc.FeatureConfig) -> List[str]:
  return [f.name for g in config.groups for f in g.features]


def _table(keys: Sequence[bytes]) -> tf.lookup.StaticHashTable:
  """'' -> PAD, vocabulary entry i -> i + 2, anything else -> OOV."""
  keys = [b""] + list(keys)
  values = [F.PAD_ID] + [i + F.NUM_RESERVED_IDS for i in range(len(keys) - 1)]
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(keys, tf.string), tf.constant(values, tf.int64)),
      default_value=tf.constant(F.OOV_ID, tf.int64))


def vocabulary_tables(tft_output: tft.TFTransformOutput,
                      names: Sequence[str]) -> Dict[str, tf.lookup.StaticHashTable]:
  return {name: _table(tft_output.vocabulary_by_name(name)) for name in names}


def raw_ids(feature: fc.Feature, raw: tf.Tensor,
            tables: Dict[str, tf.lookup.StaticHashTable]) -> tf.Tensor:
  """Raw values -> ids in the layout, as Transform maps them, with
  TFLite-friendly ops (string tables, bucket arithmetic)."""
  if feature.buckets:
    b = feature.buckets
    return F.bucketize(raw, b.start, b.width, b.count)
  return tables[feature.vocabulary].lookup(raw)


def input_spec(feature: fc.Feature, width: int) -> tf.TensorSpec:
  """A serving input: [batch, width] values of a feature, named after it."""
  return tf.TensorSpec([None, width], _DTYPES[feature.type], feature.name)


def read_item_counts(tft_output: tft.TFTransformOutput,
                     config: fc.FeatureConfig) -> np.ndarray:
  """Train counts per item id (the popularity baseline), in the id layout."""
  items = tft_output.vocabulary_by_name(config.label.vocabulary)
  path = tft_output.vocabulary_file_by_name(counts_vocabulary(config))
  with tf.io.gfile.GFile(path, "rb") as f:
    pairs = [line.split(b" ", 1) for line in f.read().splitlines()]
  if [item for _, item in pairs] != items:
    raise ValueError(f"{counts_vocabulary(config)} is not in the order of "
                     f"{config.label.vocabulary}: the Transform output is "
                     "inconsistent")
  counts = np.zeros(len(items) + F.NUM_RESERVED_IDS, np.float32)
  counts[F.NUM_RESERVED_IDS:] = [float(c) for c, _ in pairs]
  return counts


class RecommenderExport(tf.Module):
  """Everything the SavedModel serves: model, TFT graph, lookups, baseline."""

  def __init__(self, model: DualEncoder, tft_output: tft.TFTransformOutput,
               config: fc.FeatureConfig, context_length: int, top_k: int):
    super().__init__()
    self.model = model
    self.tft_layer = tft_output.transform_features_layer()
    self._raw_spec = tft_output.raw_feature_spec()
    self._config = config
    self._context_length = context_length
    items = tft_output.vocabulary_by_name(config.label.vocabulary)
    self.tables = vocabulary_tables(tft_output, config.vocabularies())
    self.item_ids = tf.constant([b"<pad>", b"<oov>"] + items, tf.string)
    self.popularity = tf.constant(read_item_counts(tft_output, config))
    self.top_k = min(top_k, len(items))

    self.serve = tf.function(self._serve, input_signature=[{
        f.name: input_spec(
            f, f.length * (context_length if g.kind == fc.SEQUENCE else 1))
        for g in config.groups for f in g.features}])
    examples = [tf.TensorSpec([None], tf.string, "examples")]
    self.evaluate = tf.function(self._evaluate, input_signature=examples)
    self.transform_features = tf.function(self._transform_features,
                                          input_signature=examples)

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {
        "serving_default": self.serve.get_concrete_function(),
        "evaluate": self.evaluate.get_concrete_function(),
        "transform_features": self.transform_features.get_concrete_function(),
    }

  def _ids(self, feature: fc.Feature, raw: tf.Tensor) -> tf.Tensor:
    return raw_ids(feature, raw, self.tables)

  def _serve(self, inputs):
    items = self._ids(self._config.label, inputs[F.CONTEXT_ITEM_ID])
    padding = tf.equal(items, F.PAD_ID)
    features = {}
    for group in self._config.groups:
      for feature in group.features:
        ids = self._ids(feature, inputs[feature.name])
        if group.kind == fc.SEQUENCE and not feature.vocabulary:
          # Numbers at padding positions are padding (TFT pads after bucketing).
          ids = tf.where(tf.repeat(padding, feature.length, axis=1),
                         tf.zeros_like(ids), ids)
        features[feature.name] = ids
    scores = self.model(features)
    # No history at all: the most popular items.
    empty = tf.reduce_all(padding, axis=1, keepdims=True)
    scores = tf.where(empty, tf.broadcast_to(self.popularity, tf.shape(scores)),
                      scores)
    top = tf.math.top_k(exclude_items(scores, items), k=self.top_k)
    return {TOP_ITEM_IDS: tf.gather(self.item_ids, top.indices),
            TOP_SCORES: top.values}

  def _transform(self, examples):
    return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

  def _evaluate(self, examples):
    transformed = self._transform(examples)
    history = tf.sparse.to_dense(transformed[F.HISTORY_ITEM_ID])
    scores = self.model({k: transformed[k]
                         for k in model_feature_names(self._config)})
    popularity = tf.broadcast_to(self.popularity, tf.shape(scores))
    return {SCORES: exclude_items(scores, history),
            POPULARITY_SCORES: exclude_items(popularity, history)}

  def _transform_features(self, examples):
    transformed = self._transform(examples)
    return {k: transformed[k]
            for k in model_feature_names(self._config) + [F.LABEL_ITEM_ID]}


def save(export: RecommenderExport, path: str) -> None:
  tf.saved_model.save(export, path, signatures=export.signatures())
