"""Sampled softmax: the full softmax outside training."""
import numpy as np
import tensorflow as tf

from components.model.losses import FullSoftmaxLoss, SampledSoftmaxLoss

ITEMS = 40


def test_sampled_softmax_is_full_softmax_outside_training():
  candidates = tf.random.stateless_normal([ITEMS, 4], seed=[3, 4])
  queries = tf.random.stateless_normal([5, 4], seed=[5, 6])
  targets = tf.constant([2, 3, 4, 5, 6])
  counts = [0.0, 0.0] + [1.0] * (ITEMS - 2)
  np.testing.assert_allclose(
      SampledSoftmaxLoss(counts, 5)(queries, targets, candidates),
      FullSoftmaxLoss()(queries, targets, candidates), rtol=1e-6)
