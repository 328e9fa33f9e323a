"""Losses over the item catalog: full softmax, or sampled with logQ correction.

The full softmax scores every item for every prediction: exact, and cheap
enough for catalogs of thousands. For large catalogs the sampled softmax
scores the target against items drawn from the train frequency distribution
(raised to `distortion`) and subtracts each candidate's log sampling
probability from its logit (logQ correction), so the gradient estimates the
full softmax's instead of penalizing popular items (TensorFlow's
sampled_softmax_loss with a fixed unigram sampler).
"""
from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras


class FullSoftmaxLoss(keras.layers.Layer):
  """Mean cross-entropy of (queries [n, d] x candidates [items, d], targets)."""

  def call(self, queries, targets, candidates, training=None):
    logits = tf.matmul(queries, candidates, transpose_b=True)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(targets, tf.int32), logits=logits))


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

  def call(self, queries, targets, candidates, training=None):
    if not training:
      return self.full(queries, targets, candidates)
    labels = tf.cast(targets, tf.int64)[:, tf.newaxis]
    sampled = tf.random.fixed_unigram_candidate_sampler(
        true_classes=labels, num_true=1, num_sampled=self.num_negatives,
        unique=True, range_max=len(self.item_counts),
        unigrams=self.item_counts, distortion=self.distortion)
    return tf.reduce_mean(tf.nn.sampled_softmax_loss(
        weights=candidates, biases=tf.zeros([len(self.item_counts)]),
        labels=labels, inputs=queries, num_sampled=self.num_negatives,
        num_classes=len(self.item_counts), sampled_values=sampled,
        remove_accidental_hits=True))


def build_loss(name: str, item_counts: Optional[Sequence[float]] = None,
               num_negatives: int = 1024) -> keras.layers.Layer:
  if name == "softmax":
    return FullSoftmaxLoss(name="full_softmax")
  if name == "sampled_softmax":
    return SampledSoftmaxLoss(item_counts, num_negatives, name="sampled_softmax")
  raise ValueError(f"unknown loss {name!r} (softmax, sampled_softmax)")
