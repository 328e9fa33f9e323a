"""Losses over the item catalog: full softmax, or sampled with logQ correction.

The full softmax scores every item for every prediction: exact, and cheap
enough for catalogs of thousands. For large catalogs the sampled softmax
scores the target against items drawn from the train frequency distribution
(raised to `distortion`) and subtracts each candidate's log sampling
probability from its logit (logQ correction), so the gradient estimates the
full softmax's instead of penalizing popular items (the logits of
TensorFlow's sampled_softmax_loss with a fixed unigram sampler).

Both take `excluded`, a function of item ids [k] -> [n, k] bool naming the
items each prediction leaves out of its softmax (the items it has seen:
rankings leave out the history, so training does too); a prediction never
leaves out its own target.
"""
from typing import Callable, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

Excluded = Callable[[tf.Tensor], tf.Tensor]
# The logit of a left-out item: far below any score, finite so that no
# gradient becomes NaN.
LEFT_OUT = -1e9


def _leave_out(logits: tf.Tensor, left_out: tf.Tensor) -> tf.Tensor:
  return tf.where(left_out, tf.constant(LEFT_OUT, logits.dtype), logits)


class FullSoftmaxLoss(keras.layers.Layer):
  """Mean cross-entropy of (queries [n, d] x candidates [items, d], targets)."""

  def call(self, queries, targets, candidates,
           excluded: Optional[Excluded] = None, training=None):
    logits = tf.matmul(queries, candidates, transpose_b=True)
    targets = tf.cast(targets, tf.int32)
    if excluded is not None:
      items = tf.range(tf.shape(candidates)[0])
      logits = _leave_out(logits, tf.logical_and(
          excluded(items), items[tf.newaxis] != targets[:, tf.newaxis]))
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=targets, logits=logits))


def sampled_softmax(queries: tf.Tensor, targets: tf.Tensor,
                    candidates: tf.Tensor, sampled_values,
                    excluded: Optional[Excluded] = None) -> tf.Tensor:
  """Mean sampled softmax cross-entropy with logQ correction, the target
  left out where it was drawn as a negative (TensorFlow's
  remove_accidental_hits), and the `excluded` items too."""
  sampled, true_expected, sampled_expected = sampled_values
  targets = tf.cast(targets, tf.int32)
  sampled = tf.cast(sampled, tf.int32)
  true_logits = tf.reduce_sum(
      queries * tf.gather(candidates, targets), axis=1, keepdims=True
  ) - tf.math.log(true_expected)
  sampled_logits = tf.matmul(
      queries, tf.gather(candidates, sampled), transpose_b=True
  ) - tf.math.log(sampled_expected)[tf.newaxis]
  left_out = sampled[tf.newaxis] == targets[:, tf.newaxis]
  if excluded is not None:
    left_out = tf.logical_or(left_out, excluded(sampled))
  logits = tf.concat([true_logits, _leave_out(sampled_logits, left_out)], 1)
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.zeros_like(targets), logits=logits))


class SampledSoftmaxLoss(keras.layers.Layer):
  """Sampled softmax with logQ correction; full softmax when not training."""

  def __init__(self, item_counts: Sequence[float], num_negatives: int = 1024,
               distortion: float = 0.75, **kwargs):
    super().__init__(**kwargs)
    self.item_counts = [float(c) for c in item_counts]
    self.num_negatives = min(num_negatives,
                             sum(1 for c in self.item_counts if c > 0) - 1)
    self.distortion = distortion
    self.full = FullSoftmaxLoss()

  def call(self, queries, targets, candidates,
           excluded: Optional[Excluded] = None, training=None):
    if not training:
      return self.full(queries, targets, candidates, excluded)
    sampled_values = tf.random.fixed_unigram_candidate_sampler(
        true_classes=tf.cast(targets, tf.int64)[:, tf.newaxis], num_true=1,
        num_sampled=self.num_negatives, unique=True,
        range_max=len(self.item_counts), unigrams=self.item_counts,
        distortion=self.distortion)
    return sampled_softmax(queries, targets, candidates, sampled_values,
                           excluded)


def build_loss(name: str, item_counts: Optional[Sequence[float]] = None,
               num_negatives: int = 1024) -> keras.layers.Layer:
  if name == "softmax":
    return FullSoftmaxLoss(name="full_softmax")
  if name == "sampled_softmax":
    return SampledSoftmaxLoss(item_counts, num_negatives, name="sampled_softmax")
  raise ValueError(f"unknown loss {name!r} (softmax, sampled_softmax)")
