"""The exported SavedModel and its signatures.

* `serving_default` takes a raw context as an app has it: item ids (strings,
  as in the data, '' for padding), ratings, genres and years, and returns the
  top-K raw item ids and scores, the context's own items excluded. It looks up
  ids in constant string-keyed hash tables built from TFT's vocabularies, so
  no vocabulary file is needed by the caller and the function converts to
  TFLite with builtin ops only.
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

from components import features as F
from components.model.dual_encoder import DualEncoder
from components.transform import ITEM_COUNTS_VOCAB

SCORES = "scores"
POPULARITY_SCORES = "popularity_scores"
TOP_ITEM_IDS = "top_item_ids"
TOP_SCORES = "top_scores"
# Score given to excluded items: the lowest finite float, so excluded items
# rank below every other and tie only with each other.
EXCLUDED_SCORE = np.finfo(np.float32).min

MODEL_FEATURES = (F.CONTEXT_ITEM, F.CONTEXT_RATING_BUCKET, F.CONTEXT_YEAR_BUCKET,
                  F.CONTEXT_GENRE_ID)


def exclude_items(scores: tf.Tensor, item_ids: tf.Tensor) -> tf.Tensor:
  """Sets the scores of item_ids [batch, n] and of PAD/OOV to EXCLUDED_SCORE."""
  item_ids = tf.cast(item_ids, tf.int32)
  shape = tf.shape(item_ids)
  rows = tf.tile(tf.range(shape[0])[:, tf.newaxis], [1, shape[1]])
  hits = tf.scatter_nd(tf.stack([rows, item_ids], axis=-1),
                       tf.ones_like(item_ids, tf.float32), tf.shape(scores))
  reserved = tf.one_hot(F.PAD_ID, tf.shape(scores)[1]) + tf.one_hot(
      F.OOV_ID, tf.shape(scores)[1])
  return tf.where(hits + reserved > 0,
                  tf.fill(tf.shape(scores), EXCLUDED_SCORE), scores)


def _table(keys: Sequence[bytes]) -> tf.lookup.StaticHashTable:
  """'' -> PAD, vocabulary entry i -> i + 2, anything else -> OOV."""
  keys = [b""] + list(keys)
  values = [F.PAD_ID] + [i + F.NUM_RESERVED_IDS for i in range(len(keys) - 1)]
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(keys, tf.string), tf.constant(values, tf.int64)),
      default_value=tf.constant(F.OOV_ID, tf.int64))


def read_item_counts(tft_output: tft.TFTransformOutput,
                     items: List[bytes]) -> np.ndarray:
  """Train label counts per item id (the popularity baseline), id layout."""
  path = tft_output.vocabulary_file_by_name(ITEM_COUNTS_VOCAB)
  with tf.io.gfile.GFile(path, "rb") as f:
    pairs = [line.split(b" ", 1) for line in f.read().splitlines()]
  counted = [item for _, item in pairs]
  if counted != items:
    raise ValueError(f"{ITEM_COUNTS_VOCAB} is not in the order of "
                     f"{F.ITEM_VOCAB}: the Transform output is inconsistent")
  counts = np.zeros(len(items) + F.NUM_RESERVED_IDS, np.float32)
  counts[F.NUM_RESERVED_IDS:] = [float(c) for c, _ in pairs]
  return counts


class RecommenderExport(tf.Module):
  """Everything the SavedModel serves: model, TFT graph, lookups, baseline."""

  def __init__(self, model: DualEncoder, tft_output: tft.TFTransformOutput,
               context_length: int, genre_length: int, top_k: int):
    super().__init__()
    self.model = model
    self.tft_layer = tft_output.transform_features_layer()
    self._raw_spec = tft_output.raw_feature_spec()
    items = tft_output.vocabulary_by_name(F.ITEM_VOCAB)
    self.item_table = _table(items)
    self.genre_table = _table(tft_output.vocabulary_by_name(F.GENRE_VOCAB))
    self.item_ids = tf.constant([b"<pad>", b"<oov>"] + items, tf.string)
    self.popularity = tf.constant(read_item_counts(tft_output, items))
    self.top_k = min(top_k, len(items))
    self.context_length = context_length
    self.genre_length = genre_length

    self.serve = tf.function(self._serve, input_signature=[
        tf.TensorSpec([None, context_length], tf.string, F.CONTEXT_ITEM_ID),
        tf.TensorSpec([None, context_length], tf.float32, F.CONTEXT_RATING),
        tf.TensorSpec([None, genre_length], tf.string, F.CONTEXT_GENRE),
        tf.TensorSpec([None, context_length], tf.int32, F.CONTEXT_YEAR),
    ])
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

  def _serve(self, context_item_id, context_rating, context_genre,
             context_year):
    items = self.item_table.lookup(context_item_id)
    padding = tf.equal(items, F.PAD_ID)
    pad = tf.zeros_like(items)
    features = {
        F.CONTEXT_ITEM: items,
        F.CONTEXT_RATING_BUCKET: tf.where(
            padding, pad, F.rating_buckets(context_rating)),
        F.CONTEXT_YEAR_BUCKET: tf.where(
            padding, pad, F.year_buckets(context_year)),
        F.CONTEXT_GENRE_ID: self.genre_table.lookup(context_genre),
    }
    scores = exclude_items(self.model(features), items)
    top = tf.math.top_k(scores, k=self.top_k)
    return {TOP_ITEM_IDS: tf.gather(self.item_ids, top.indices),
            TOP_SCORES: top.values}

  def _transform(self, examples):
    return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

  def _evaluate(self, examples):
    transformed = self._transform(examples)
    history = tf.sparse.to_dense(transformed[F.HISTORY_ITEM])
    scores = self.model({k: transformed[k] for k in MODEL_FEATURES})
    popularity = tf.broadcast_to(self.popularity, tf.shape(scores))
    return {SCORES: exclude_items(scores, history),
            POPULARITY_SCORES: exclude_items(popularity, history)}

  def _transform_features(self, examples):
    transformed = self._transform(examples)
    return {k: transformed[k] for k in MODEL_FEATURES + (F.LABEL_ITEM,)}


def save(export: RecommenderExport, path: str) -> None:
  tf.saved_model.save(export, path, signatures=export.signatures())
