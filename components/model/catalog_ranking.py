"""Ranking the whole catalog the protocol's way, in TensorFlow.

`exclude_items` gives the items a user has seen (and PAD/OOV) the lowest
score: serving excludes the context, evaluation the whole history. The
validation metrics during training rank like the TFMA metrics do
(../shared/PROTOCOL.md): a target's rank is the number of other items scored
at least as high, so ties count against it.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.lib import features as F

# Score given to excluded items: the lowest finite float, so excluded items
# rank below every other and tie only with each other.
EXCLUDED_SCORE = np.finfo(np.float32).min


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


def target_ranks(scores: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
  """[batch] ranks: other items scored at least as high as the target."""
  target_scores = tf.gather(scores, tf.cast(targets, tf.int32), batch_dims=1)
  return tf.reduce_sum(
      tf.cast(scores >= target_scores[:, tf.newaxis], tf.int32), axis=1) - 1


class HitRate(keras.metrics.Mean):
  """HR@k over (targets, ranks)."""

  def __init__(self, k: int = 10, name=None, **kwargs):
    super().__init__(name=name or f"hit_rate_at_{k}", **kwargs)
    self.k = k

  def update_state(self, ranks, sample_weight=None):
    return super().update_state(tf.cast(ranks < self.k, tf.float32),
                                sample_weight)


class NDCG(keras.metrics.Mean):
  """NDCG@k with one target per example, over ranks."""

  def __init__(self, k: int = 10, name=None, **kwargs):
    super().__init__(name=name or f"ndcg_at_{k}", **kwargs)
    self.k = k

  def update_state(self, ranks, sample_weight=None):
    gain = 1.0 / (tf.math.log(tf.cast(ranks, tf.float32) + 2.0) / tf.math.log(2.0))
    return super().update_state(tf.where(ranks < self.k, gain, 0.0),
                                sample_weight)
