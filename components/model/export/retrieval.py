"""The retrieval model's SavedModel and its signatures.

* `serving_default` takes a raw context as an app has it: one input per
  feature of the feature config, named as in the session examples (item ids
  as strings with '' for padding, ratings, years, genre slots, user
  attributes), and returns the top-K raw item ids and scores, the context's
  own items excluded; an empty context gets the most popular items. It
  converts to TFLite with builtin ops only (signatures.py).
`OnDeviceExport` is what model.tflite holds: the same model on vocabulary
  indices (int32, a static batch of one), which the app maps from raw values
  with the bundle's input_mapping.json (`input_mapping`); it returns the
  indices and scores of the top K + context length + 2 items: the
  context's own and PAD/UNKNOWN may be among them, and the caller drops
  those (in the graph, a scatter and passes over the catalog would cost more
  than the wider top-k). `scores` is the whole catalog's, which the TFLite
  evaluation ranks. A history with no items at all is the caller's to
  answer, with the popularity in the mapping: in the graph, the check and
  a select over the catalog would cost every query about a tenth of a call.
* `evaluate` takes serialized session examples, applies the TFT graph that
  training used, and returns scores over the whole catalog with the user's
  history excluded (filter-seen), beside the most-popular baseline's scores
  under the same exclusion: TFMA ranks both with the same metrics.
* `transform_features` gives TFMA the transformed label.
"""
from typing import Dict

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.lib import feature_config as fc
from components.lib import features as F
from components.model.catalog_ranking import exclude_items
from components.model.dual_encoder import DualEncoder
from components.model.export import input_mapping
from components.model.export import signatures
from components.model.export.signature_names import (ONDEVICE,
                                                     POPULARITY_SCORES,
                                                     SCORES, SERVING,
                                                     TOP_ITEM_IDS,
                                                     TOP_ITEM_INDICES,
                                                     TOP_SCORES)


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


class OnDeviceExport(tf.Module):
  """The `ondevice` signature, saved as a SavedModel of its own for the
  TFLite conversion: the full export's string tables would come along (their
  initializer runs in the converted file, and its string tensors are dynamic,
  which makes XNNPACK refuse the whole graph)."""

  def __init__(self, model: DualEncoder, widths: Dict[str, int], top_k: int,
               context_length: int):
    super().__init__()
    self.model = model
    # The context's own and PAD/UNKNOWN may be among the top: the caller
    # drops them (cheaper than excluding them in the graph: a scatter and a
    # pass over the catalog cost more than the wider top-k).
    self.top = top_k + context_length + F.NUM_RESERVED_IDS
    self.call = tf.function(self._call, input_signature=[{
        name: tf.TensorSpec([1, width], tf.int32, name)
        for name, width in widths.items()}])

  def save(self, path: str) -> None:
    tf.saved_model.save(self, path, signatures={
        ONDEVICE: self.call.get_concrete_function()})

  def _call(self, inputs):
    # int32 throughout: a cast to int64 and back is two ops per input.
    scores = self.model(inputs)
    top = tf.math.top_k(scores, k=min(self.top, int(scores.shape[1])))
    return {TOP_ITEM_INDICES: top.indices, TOP_SCORES: top.values,
            SCORES: scores}


class RecommenderExport(signatures.ExportModule):
  """Everything the SavedModel serves: model, TFT graph, lookups, baseline."""

  def __init__(self, model: DualEncoder, tft_output: tft.TFTransformOutput,
               config: fc.FeatureConfig, context_length: int, top_k: int):
    super().__init__(tft_output, config, config.vocabularies())
    self.model = model
    items = tft_output.vocabulary_by_name(config.label.vocabulary)
    self.item_ids = tf.constant([b"<pad>", b"<oov>"] + items, tf.string)
    self.top_k = min(top_k, len(items))
    self.context_length = context_length
    counts = read_item_counts(tft_output, config)
    self.popularity = tf.constant(counts)
    self._popularity_shares = (counts / max(counts.sum(), 1.0))[
        F.NUM_RESERVED_IDS:]
    self._vocabularies = {name: [v.decode("utf-8") for v in
                                 tft_output.vocabulary_by_name(name)]
                          for name in config.vocabularies()}

    widths = {f.name: f.length * (context_length if g.kind == fc.SEQUENCE
                                  else 1)
              for g in config.groups for f in g.features}
    self.serve = tf.function(self._serve, input_signature=[{
        f.name: signatures.input_spec(f, widths[f.name])
        for g in config.groups for f in g.features}])
    self.ondevice = OnDeviceExport(model, widths, self.top_k, context_length)
    examples = [signatures.EXAMPLES]
    self.evaluate = tf.function(self._evaluate, input_signature=examples)
    self.transform_features = tf.function(self._transform_features,
                                          input_signature=examples)

  def signature_functions(self):
    return {SERVING: self.serve, "evaluate": self.evaluate,
            "transform_features": self.transform_features}

  def input_mapping(self) -> input_mapping.InputMapping:
    """How an app maps raw values to `ondevice`'s inputs."""
    inputs = []
    for group in self._config.groups:
      for f in group.features:
        inputs.append(input_mapping.Input(
            name=f.name, slots=f.length,
            kind=(input_mapping.SEQUENCE if group.kind == fc.SEQUENCE
                  else input_mapping.STATIC),
            vocabulary=f.vocabulary,
            boundaries=tuple(float(np.float32(b)) for b in F.bucket_boundaries(
                f.buckets.start, f.buckets.width, f.buckets.count))
            if f.buckets else ()))
    return input_mapping.InputMapping(
        inputs, self._vocabularies, self._config.label.vocabulary,
        self.context_length, self.top_k, self._popularity_shares)

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
