"""The retrieval model's SavedModel and its signatures.

* `serving_default` takes a raw context as an app has it: one input per
  feature of the feature config, named as in the session examples (item ids
  as strings with '' for padding, ratings, years, genre slots, user
  attributes), and returns the top-K raw item ids and scores, the context's
  own items excluded; an empty context gets the most popular items. It
  converts to TFLite with builtin ops only (signatures.py).
* `evaluate` takes serialized session examples, applies the TFT graph that
  training used, and returns scores over the whole catalog with the user's
  history excluded (filter-seen), beside the most-popular baseline's scores
  under the same exclusion: TFMA ranks both with the same metrics.
* `transform_features` gives TFMA the transformed label.
"""
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.lib import feature_config as fc
from components.lib import features as F
from components.model.catalog_ranking import exclude_items
from components.model.dual_encoder import DualEncoder
from components.model.export import signatures
from components.model.export.signature_names import (POPULARITY_SCORES,
                                                     SCORES, SERVING,
                                                     TOP_ITEM_IDS, TOP_SCORES)


def read_item_counts(tft_output: tft.TFTransformOutput,
                     config: fc.FeatureConfig) -> np.ndarray:
  """Train counts per item id (the popularity baseline), in the id layout."""
  items = tft_output.vocabulary_by_name(config.label.vocabulary)
  path = tft_output.vocabulary_file_by_name(config.label_counts_vocabulary)
  with tf.io.gfile.GFile(path, "rb") as f:
    pairs = [line.split(b" ", 1) for line in f.read().splitlines()]
  if [item for _, item in pairs] != items:
    raise ValueError(f"{config.label_counts_vocabulary} is not in the order "
                     f"of {config.label.vocabulary}: the Transform output is "
                     "inconsistent")
  counts = np.zeros(len(items) + F.NUM_RESERVED_IDS, np.float32)
  counts[F.NUM_RESERVED_IDS:] = [float(c) for c, _ in pairs]
  return counts


class RecommenderExport(signatures.ExportModule):
  """Everything the SavedModel serves: model, TFT graph, lookups, baseline."""

  def __init__(self, model: DualEncoder, tft_output: tft.TFTransformOutput,
               config: fc.FeatureConfig, context_length: int, top_k: int):
    super().__init__(tft_output, config, config.vocabularies())
    self.model = model
    items = tft_output.vocabulary_by_name(config.label.vocabulary)
    self.item_ids = tf.constant([b"<pad>", b"<oov>"] + items, tf.string)
    self.popularity = tf.constant(read_item_counts(tft_output, config))
    self.top_k = min(top_k, len(items))

    self.serve = tf.function(self._serve, input_signature=[{
        f.name: signatures.input_spec(
            f, f.length * (context_length if g.kind == fc.SEQUENCE else 1))
        for g in config.groups for f in g.features}])
    examples = [signatures.EXAMPLES]
    self.evaluate = tf.function(self._evaluate, input_signature=examples)
    self.transform_features = tf.function(self._transform_features,
                                          input_signature=examples)

  def signature_functions(self):
    return {SERVING: self.serve, "evaluate": self.evaluate,
            "transform_features": self.transform_features}

  def _serve(self, inputs):
    items = self.raw_ids(self._config.label, inputs[F.CONTEXT_ITEM_ID])
    padding = tf.equal(items, F.PAD_ID)
    features = {}
    for group in self._config.groups:
      for feature in group.features:
        ids = self.raw_ids(feature, inputs[feature.name])
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

  def _evaluate(self, examples):
    transformed = self.transform(examples)
    history = tf.sparse.to_dense(transformed[F.HISTORY_ITEM_ID])
    scores = self.model({k: transformed[k]
                         for k in self._config.input_names()})
    popularity = tf.broadcast_to(self.popularity, tf.shape(scores))
    return {SCORES: exclude_items(scores, history),
            POPULARITY_SCORES: exclude_items(popularity, history)}

  def _transform_features(self, examples):
    transformed = self.transform(examples)
    return {k: transformed[k]
            for k in self._config.input_names() + [F.LABEL_ITEM_ID]}
