"""TwoStageEvaluator's ranks under the protocol: retrieval ranks, the top N
re-ordered by rating, and the metrics of ranks."""
import numpy as np
import pytest

from components.model.catalog_ranking import EXCLUDED_SCORE
from components.two_stage_evaluator import executor as two_stage


def test_reordered_ranks_follow_the_protocol():
  # Three users; retrieval top 3 per user (ids, scores) and their ratings.
  top_ids = np.array([[5, 6, 7], [5, 6, 7], [8, 9, 4]])
  top_scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, EXCLUDED_SCORE],
                         [3.0, 2.0, 1.0]])
  ratings = np.array([[4.0, 5.0, 3.0], [4.0, 4.0, 5.0], [1.0, 1.0, 1.0]])
  labels = np.array([5, 6, 2])
  ranks = np.array([0, 1, 7])
  # User 0: target 5 rated 4.0, below 6's 5.0 -> rank 1. User 1: target 6
  # ties with 5 (ties count against it; the excluded 7 is no candidate) ->
  # rank 1. User 2: target outside the top 3 keeps its retrieval rank.
  np.testing.assert_array_equal(two_stage.reordered_ranks(
      ranks, top_ids, top_scores, ratings, labels, 3), [1, 1, 7])
  # With the top 2 only, user 0's target still ranks 1; user 1 too.
  np.testing.assert_array_equal(two_stage.reordered_ranks(
      ranks, top_ids, top_scores, ratings, labels, 2), [1, 1, 7])
  # A target ranked within n by score but cut by top_k's tie-break keeps n.
  np.testing.assert_array_equal(two_stage.reordered_ranks(
      np.array([2]), top_ids[:1], top_scores[:1], ratings[:1],
      np.array([9]), 2), [2])


def test_retrieval_ranks_count_ties_against_the_target():
  scores = np.array([[1.0, 2.0, 2.0, 0.5], [EXCLUDED_SCORE, 0.0, 1.0, 3.0]])
  np.testing.assert_array_equal(
      two_stage.retrieval_ranks(scores, np.array([1, 0])), [1, 3])


