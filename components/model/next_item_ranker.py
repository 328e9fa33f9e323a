"""The next-item ranker: re-orders retrieval's top N for a context.

The retrieval model scores the whole catalog with one dot product per item;
the ranker sees only its N best and can afford features of each candidate
against the context that a dot product cannot express:

* how retrieval ranked it: its score against the best and against the
  list's mean and spread, and its position;
* its train popularity;
* how likely it follows the most recent context items: P(candidate | item)
  of each of the last 1, 5, 20, ... items (their sum and their largest),
  from item-to-item transitions in the train histories; each item's
  `successors` most likely next items are kept, the table a phone holds
  (on ML-1M these counts add to an attention retrieval model what the
  user-set co-occurrence they replaced did not; README, "Two stages");
* its attributes against the recent items' (MovieLens genres and year,
  Ali-CCP category, shop, brand, intention): the share of its attribute
  values that the last few items hold;
* the user's static features.

Small dense layers score every candidate alike; the loss is a softmax over
the candidate list with the true next item as its label (a list whose label
retrieval missed teaches nothing and weighs zero). Candidates that are
padding score MASKED_SCORE: a finite floor, so quantization keeps a sane
range.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import scipy.sparse
import tensorflow as tf
import tf_keras as keras

from components.lib import feature_config as fc
from components.lib import features as F
from components.model.causal_model import CausalModel
from components.model.feature_embeddings import static_group_embeddings

# A padding candidate's score: below any real one, and finite.
MASKED_SCORE = -1e4
# Recent context items whose attributes a candidate's are compared with.
ATTRIBUTE_RECENT_ITEMS = 5
# Transition probabilities span 1e-5 to 1: a feature is log(1 + p / this).
PROBABILITY_UNIT = 1e-3


def successor_table(histories: Sequence[np.ndarray], num_items: int,
                    successors: int, window: int
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """Each item's `successors` likeliest next items: (ids [num_items,
  successors] (PAD where an item has fewer), P(next | item) [num_items,
  successors]). In each history (item ids, oldest first; PAD and OOV left
  out) an item b `d` <= `window` steps after a counts 1 / d towards a -> b;
  P normalizes a's counts over all its successors, before the cut."""
  rows, columns, weights = [], [], []
  for history in histories:
    items = np.asarray(history, np.int64)
    items = items[items >= F.NUM_RESERVED_IDS]
    for distance in range(1, min(window, len(items) - 1) + 1):
      rows.append(items[:-distance])
      columns.append(items[distance:])
      weights.append(np.full(len(items) - distance, 1.0 / distance))
  counts = scipy.sparse.csr_matrix(
      (np.concatenate(weights) if weights else [],
       (np.concatenate(rows) if rows else [],
        np.concatenate(columns) if columns else [])),
      shape=(num_items, num_items))
  counts.sum_duplicates()
  ids = np.zeros([num_items, successors], np.int32)
  probability = np.zeros([num_items, successors], np.float32)
  for item in range(num_items):
    start, end = counts.indptr[item], counts.indptr[item + 1]
    others, values = counts.indices[start:end], counts.data[start:end]
    # Likeliest first; ties by id, so that the table is reproducible.
    best = np.lexsort((others, -values))[:successors]
    ids[item, :len(best)] = others[best]
    probability[item, :len(best)] = values[best] / max(values.sum(), 1e-12)
  return ids, probability


def recent_items(context: tf.Tensor, count: int) -> tf.Tensor:
  """[b, count] the newest `count` items of contexts [b, L] (oldest first,
  PAD-padded at the end), newest first, PAD where there are fewer."""
  length = tf.reduce_sum(tf.cast(tf.not_equal(context, F.PAD_ID), tf.int32),
                         axis=1)
  index = length[:, tf.newaxis] - 1 - tf.range(count)[tf.newaxis]
  found = tf.gather(context, tf.maximum(index, 0), batch_dims=1)
  return tf.where(index >= 0, found, tf.zeros_like(found))


def _narrow(ids: np.ndarray) -> np.ndarray:
  """int16 when every id fits (TFLite gathers int16), else int32."""
  ids = np.asarray(ids)
  fits = ids.size == 0 or int(ids.max()) <= np.iinfo(np.int16).max
  return ids.astype(np.int16 if fits else np.int32)


class CandidateFeatures(keras.layers.Layer):
  """(candidates [b, n], their retrieval scores [b, n], context [b, L]) ->
  dense features [b, n, width] (see the module's docstring), from constant
  item tables built on train data."""

  def __init__(self, log_popularity: np.ndarray, successor_ids: np.ndarray,
               successor_probability: np.ndarray, attribute_table: np.ndarray,
               recent_windows: Sequence[int], **kwargs):
    super().__init__(**kwargs)
    self.recent_windows = sorted(recent_windows)
    # Id tables in the narrowest integer type that holds their ids: on the
    # phone they are most of the file.
    self._tables = {
        "log_popularity": np.asarray(log_popularity, np.float32),
        "successor_ids": _narrow(successor_ids),
        "successor_probability": np.asarray(successor_probability,
                                            np.float32),
        "attribute_table": _narrow(attribute_table)}
    self.width = 3 + 1 + 2 * len(self.recent_windows) + (
        1 if self._tables["attribute_table"].shape[1] else 0)

  def build(self, input_shape):
    for name, values in self._tables.items():
      setattr(self, name, self.add_weight(
          name=name, shape=values.shape, dtype=values.dtype, trainable=False,
          initializer=keras.initializers.Constant(values)))
    super().build(input_shape)

  def _retrieval(self, scores, valid):
    """Score against the best, the list's standardized score, position."""
    weight = tf.cast(valid, tf.float32)
    count = tf.maximum(tf.reduce_sum(weight, axis=1, keepdims=True), 1.0)
    kept = scores * weight
    mean = tf.reduce_sum(kept, axis=1, keepdims=True) / count
    spread = tf.sqrt(tf.reduce_sum(tf.square(kept - mean * weight), axis=1,
                                   keepdims=True) / count + 1e-6)
    best = tf.reduce_max(tf.where(valid, scores, MASKED_SCORE), axis=1,
                         keepdims=True)
    position = tf.math.log1p(tf.cast(tf.range(tf.shape(scores)[1]),
                                     tf.float32))
    return [tf.where(valid, scores - best, 0.0),
            tf.where(valid, (scores - mean) / spread, 0.0),
            tf.broadcast_to(position[tf.newaxis], tf.shape(scores))]

  def _transitions(self, candidates, recent):
    """Per window of recent items: the sum and the largest of P(candidate |
    item), on a log scale."""
    # [b, r, k] each recent item's successors; [b, n, r] P(candidate | each
    # recent item) (0 unless it is a kept successor).
    ids = tf.cast(tf.gather(self.successor_ids, recent), tf.int32)
    probability = tf.gather(self.successor_probability, recent)
    match = tf.cast(tf.equal(candidates[:, :, tf.newaxis, tf.newaxis],
                             ids[:, tf.newaxis]), tf.float32)
    follows = tf.reduce_sum(match * probability[:, tf.newaxis], axis=-1)
    real = tf.cast(tf.not_equal(recent, F.PAD_ID), tf.float32)[:, tf.newaxis]
    parts = []
    for window in self.recent_windows:
      kept = follows[:, :, :window] * real[:, :, :window]
      parts += [tf.math.log1p(tf.reduce_sum(kept, axis=-1) / PROBABILITY_UNIT),
                tf.math.log1p(tf.reduce_max(kept, axis=-1) / PROBABILITY_UNIT)]
    return parts

  def _attributes(self, candidates, recent):
    """The share of a candidate's attribute values the recent items hold."""
    own = tf.cast(tf.gather(self.attribute_table, candidates),
                  tf.int32)  # [b, n, s]
    held = tf.cast(tf.gather(self.attribute_table,
                             recent[:, :ATTRIBUTE_RECENT_ITEMS]), tf.int32)
    held = tf.reshape(held, [tf.shape(held)[0], 1, 1, -1])  # [b, 1, 1, r*s]
    found = tf.reduce_any(tf.equal(own[..., tf.newaxis], held), axis=-1)
    real = tf.not_equal(own, F.PAD_ID)
    shared = tf.reduce_sum(tf.cast(found & real, tf.float32), axis=-1)
    return [shared / tf.maximum(
        tf.reduce_sum(tf.cast(real, tf.float32), axis=-1), 1.0)]

  def call(self, candidates, scores, context):
    candidates = tf.cast(candidates, tf.int32)
    scores = tf.cast(scores, tf.float32)
    valid = candidates >= F.NUM_RESERVED_IDS
    recent = recent_items(tf.cast(context, tf.int32), self.recent_windows[-1])
    parts = self._retrieval(scores, valid)
    parts.append(tf.gather(self.log_popularity, candidates))
    parts += self._transitions(candidates, recent)
    if self.attribute_table.shape[1]:
      parts += self._attributes(candidates, recent)
    return tf.stack(parts, axis=-1)


class NextItemRanker(CausalModel):
  """Scores retrieval's candidates for a context (transformed features:
  F.CANDIDATE_ITEM_INDEX, F.CANDIDATE_SCORE, F.CONTEXT_ITEM_ID and the
  static groups of the feature config); trained on lists whose label is
  the index of the true next item among the candidates (-1 when retrieval
  missed it)."""

  def __init__(self, feature_config: fc.FeatureConfig,
               vocabulary_sizes: Dict[str, int],
               candidate_features: CandidateFeatures,
               hidden_units: Sequence[int], dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    self.candidate_features = candidate_features
    self.normalization = keras.layers.Normalization(axis=-1,
                                                    name="normalization")
    self.static_embeddings = static_group_embeddings(feature_config,
                                                     vocabulary_sizes)
    self.hidden: List[keras.layers.Layer] = []
    for i, units in enumerate(hidden_units):
      self.hidden.append(keras.layers.Dense(units, activation="relu",
                                            name=f"hidden_{i}"))
      if dropout:
        self.hidden.append(keras.layers.Dropout(dropout))
    self.output_layer = keras.layers.Dense(1, name="score")
    self.hit_rate = keras.metrics.Mean(name="hit_rate_at_10")
    self.ndcg = keras.metrics.Mean(name="ndcg_at_10")
    self.evaluation_metrics = [self.hit_rate, self.ndcg]

  def features(self, inputs) -> tf.Tensor:
    """[b, n, width] the candidates' dense features (before normalization)."""
    return self.candidate_features(inputs[F.CANDIDATE_ITEM_INDEX],
                                   inputs[F.CANDIDATE_SCORE],
                                   inputs[F.CONTEXT_ITEM_ID])

  def call(self, inputs, training=None):
    """[b, n] scores; padding candidates score MASKED_SCORE."""
    x = self.normalization(self.features(inputs))
    n = tf.shape(x)[1]
    users = [layer(inputs) for layer in self.static_embeddings]
    x = tf.concat([x] + [tf.tile(u[:, tf.newaxis], [1, n, 1]) for u in users],
                  axis=-1)
    for layer in self.hidden:
      x = layer(x, training=training)
    valid = tf.cast(inputs[F.CANDIDATE_ITEM_INDEX], tf.int32) >= (
        F.NUM_RESERVED_IDS)
    return tf.where(valid, self.output_layer(x)[..., 0], MASKED_SCORE)

  def training_loss(self, data):
    inputs, positions = data
    scores = self(inputs, training=True)
    return _list_loss(scores, positions)

  def test_step(self, data):
    """The eval lists' loss, and HR@10 / NDCG@10 within the lists (a list
    whose label retrieval missed counts as a miss)."""
    inputs, positions = data
    scores = self(inputs, training=False)
    self.loss_tracker.update_state(_list_loss(scores, positions))
    found = positions >= 0
    target = tf.gather(scores, tf.maximum(positions, 0), batch_dims=1)
    ranks = tf.reduce_sum(tf.cast(scores >= target[:, tf.newaxis], tf.int32),
                          axis=1) - 1
    hit = tf.logical_and(found, ranks < 10)
    gain = 1.0 / (tf.math.log(tf.cast(ranks, tf.float32) + 2.0) /
                  tf.math.log(2.0))
    self.hit_rate.update_state(tf.cast(hit, tf.float32))
    self.ndcg.update_state(tf.where(hit, gain, 0.0))
    return self.metric_results()


def _list_loss(scores: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
  """Mean softmax cross-entropy of the lists whose label is a candidate."""
  found = positions >= 0
  losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.boolean_mask(positions, found),
      logits=tf.boolean_mask(scores, found))
  # 0 for a batch without one (its lists teach nothing).
  return tf.reduce_sum(losses) / tf.maximum(
      tf.cast(tf.size(losses), tf.float32), 1.0)
