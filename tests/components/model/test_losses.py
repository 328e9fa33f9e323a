"""Losses: the sampled softmax is TensorFlow's and the full softmax
outside training; both leave out the excluded items but never the target."""
import numpy as np
import tensorflow as tf

import pytest

from components.model.losses import (FullSoftmaxLoss, SampledSoftmaxLoss,
                                     sampled_softmax)

ITEMS = 40


def test_sampled_softmax_is_full_softmax_outside_training():
  candidates = tf.random.stateless_normal([ITEMS, 4], seed=[3, 4])
  queries = tf.random.stateless_normal([5, 4], seed=[5, 6])
  targets = tf.constant([2, 3, 4, 5, 6])
  counts = [0.0, 0.0] + [1.0] * (ITEMS - 2)
  np.testing.assert_allclose(
      SampledSoftmaxLoss(counts, 5)(queries, targets, candidates),
      FullSoftmaxLoss()(queries, targets, candidates), rtol=1e-6)


def _sampled_values(targets, count=12):
  return tf.random.fixed_unigram_candidate_sampler(
      true_classes=tf.cast(targets, tf.int64)[:, tf.newaxis], num_true=1,
      num_sampled=count, unique=True, range_max=ITEMS,
      unigrams=[0.0, 0.0] + [1.0] * (ITEMS - 2), seed=7)


def test_sampled_softmax_is_tensorflows_with_accidental_hits_removed():
  candidates = tf.random.stateless_normal([ITEMS, 4], seed=[3, 4])
  queries = tf.random.stateless_normal([5, 4], seed=[5, 6])
  targets = tf.constant([2, 3, 4, 5, 6])
  values = _sampled_values(targets)
  expected = tf.nn.sampled_softmax_loss(
      weights=candidates, biases=tf.zeros([ITEMS]),
      labels=tf.cast(targets, tf.int64)[:, tf.newaxis], inputs=queries,
      num_sampled=12, num_classes=ITEMS, sampled_values=values,
      remove_accidental_hits=True)
  assert float(sampled_softmax(queries, targets, candidates, values)) == (
      pytest.approx(float(tf.reduce_mean(expected)), rel=1e-5))


def test_excluded_items_leave_both_softmaxes_but_the_target_stays():
  candidates = tf.random.stateless_normal([ITEMS, 4], seed=[3, 4])
  queries = tf.random.stateless_normal([2, 4], seed=[5, 6])
  targets = tf.constant([2, 9])
  left_out = {0: {5, 6, 2}, 1: {9, 30}}  # row 0 "saw" its own target

  def excluded(ids):
    ids = ids.numpy()
    return tf.constant([[i in left_out[r] for i in ids] for r in range(2)])

  logits = (queries @ tf.transpose(candidates)).numpy()
  expected = []
  for row, target in enumerate(targets.numpy()):
    kept = [i for i in range(ITEMS)
            if i == target or i not in left_out[row]]
    expected.append(-tf.nn.log_softmax(logits[row, kept])[kept.index(target)])
  assert float(FullSoftmaxLoss()(queries, targets, candidates, excluded)) == (
      pytest.approx(float(np.mean(expected)), rel=1e-5))

  values = _sampled_values(targets, count=ITEMS - 2)  # every real item
  sampled = values[0].numpy()
  corrected = logits - 0.0  # the same expected count for every item
  expected = []
  for row, target in enumerate(targets.numpy()):
    negatives = [i for i in sampled
                 if i != target and i not in left_out[row]]
    row_logits = np.concatenate([[corrected[row, target]],
                                 corrected[row, negatives]])
    expected.append(-tf.nn.log_softmax(row_logits)[0])
  assert float(sampled_softmax(queries, targets, candidates, values,
                               excluded)) == pytest.approx(
                                   float(np.mean(expected)), rel=1e-4)
