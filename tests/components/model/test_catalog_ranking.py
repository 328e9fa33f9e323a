"""Ranking the catalog: ties count against the target; exclusions."""
import numpy as np
import tensorflow as tf

from components.model import catalog_ranking


def test_ranking_counts_ties_against_the_target():
  scores = tf.constant([[0.1, 0.9, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_array_equal(
      catalog_ranking.target_ranks(scores, tf.constant([2, 1])), [2, 3])
  excluded = catalog_ranking.exclude_items(scores, tf.constant([[3, 0], [2, 0]]))
  assert excluded[0, 3] == catalog_ranking.EXCLUDED_SCORE  # seen
  assert excluded[0, 0] == catalog_ranking.EXCLUDED_SCORE  # PAD
  assert excluded[0, 1] == catalog_ranking.EXCLUDED_SCORE  # OOV
  assert excluded[0, 2] == 0.5
