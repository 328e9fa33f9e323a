"""The next-item ranker: its item tables, its candidate features (each
checked by hand), and that it learns to re-order candidates."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import features as F
from components.model import next_item_ranker as ranker
from tests.support.sessions import feature_config

P = F.PAD_ID


def test_cooccurrence_neighbors_are_the_most_similar_items_by_cosine():
  # Users' item sets; 1 (OOV) and PAD are no items.
  sets = [np.array([2, 3, 4, 1]), np.array([2, 3]), np.array([3, 5, 0])]
  ids, similarity = ranker.cooccurrence_neighbors(sets, 6, 2)
  # 3 is in all three sets, 2 in two, 4 and 5 in one each.
  # cos(2, 3) = 2 / sqrt(2 * 3); cos(2, 4) = 1 / sqrt(2); cos(3, 4) =
  # cos(3, 5) = 1 / sqrt(3); 4 and 5 never meet.
  np.testing.assert_array_equal(ids[2], [3, 4])
  np.testing.assert_allclose(similarity[2], [2 / np.sqrt(6), 1 / np.sqrt(2)],
                             rtol=1e-6)
  np.testing.assert_array_equal(ids[3], [2, 4])  # 4 and 5 tie: lower id
  np.testing.assert_allclose(similarity[3], [2 / np.sqrt(6), 1 / np.sqrt(3)],
                             rtol=1e-6)
  np.testing.assert_array_equal(ids[5], [3, P])  # one neighbour only
  np.testing.assert_allclose(similarity[5], [1 / np.sqrt(3), 0.0], rtol=1e-6)
  np.testing.assert_array_equal(ids[0], [P, P])


def test_recent_items_are_the_newest_first():
  context = tf.constant([[5, 6, 7, P], [9, P, P, P], [P, P, P, P]])
  np.testing.assert_array_equal(ranker.recent_items(context, 3),
                                [[7, 6, 5], [9, P, P], [P, P, P]])


def _features(**kwargs):
  """Items 2..7: popularity log(1 + id); 2 and 3 are each other's
  neighbours (0.5), 4's neighbour is 6 (0.25); one attribute slot."""
  num_items = 8
  neighbor_ids = np.zeros([num_items, 2], np.int32)
  neighbor_similarity = np.zeros([num_items, 2], np.float32)
  neighbor_ids[2, 0], neighbor_similarity[2, 0] = 3, 0.5
  neighbor_ids[3, 0], neighbor_similarity[3, 0] = 2, 0.5
  neighbor_ids[4, 0], neighbor_similarity[4, 0] = 6, 0.25
  attributes = np.array([[P], [P], [10], [11], [10], [12], [11], [13]],
                        np.int32)
  return ranker.CandidateFeatures(
      np.log1p(np.arange(num_items)), neighbor_ids, neighbor_similarity,
      attributes, recent_windows=kwargs.get("windows", [1, 2]))


def test_candidate_features_by_hand():
  layer = _features()
  # Context 2, 4 (4 newest); candidates 3, 6, 7 and a padding slot.
  candidates = tf.constant([[3, 6, 7, P]])
  scores = tf.constant([[2.0, 1.0, 0.0, -5.0]])
  x = layer(candidates, scores, tf.constant([[2, 4, P]])).numpy()[0]
  assert x.shape == (4, layer.width) and layer.width == 3 + 1 + 4 + 1
  valid = x[:3]
  # Retrieval: score minus the best, standardized over the 3 real ones,
  # log(1 + position).
  np.testing.assert_allclose(valid[:, 0], [0.0, -1.0, -2.0], atol=1e-6)
  np.testing.assert_allclose(valid[:, 1], [1.2247, 0.0, -1.2247], atol=1e-3)
  np.testing.assert_allclose(x[:, 2], np.log1p(np.arange(4)), atol=1e-6)
  np.testing.assert_allclose(valid[:, 3], np.log1p([3, 6, 7]), atol=1e-6)
  # Co-occurrence with the last 1 item (4): only 6 is 4's neighbour; with
  # the last 2 (4, 2): 3 is 2's, 6 is 4's; mean over the window, max.
  np.testing.assert_allclose(valid[:, 4:8], [[0.0, 0.0, 0.25, 0.5],
                                             [0.25, 0.25, 0.125, 0.25],
                                             [0.0, 0.0, 0.0, 0.0]], atol=1e-6)
  # Attributes: 3 has 11 (not among 2's 10 and 4's 10), 6 has 11 too, 7 13.
  np.testing.assert_allclose(valid[:, 8], [0.0, 0.0, 0.0])
  x = layer(tf.constant([[4, 5]]), tf.constant([[1.0, 0.5]]),
            tf.constant([[2, P, P]])).numpy()[0]
  np.testing.assert_allclose(x[:, 8], [1.0, 0.0])


class _Lists:
  """Synthetic lists: the label is the candidate that co-occurs with the
  newest context item, at a random position with a low retrieval score."""

  def __init__(self, count, seed):
    rng = np.random.default_rng(seed)
    candidates = np.tile(np.arange(2, 8), (count, 1))
    for row in candidates:
      rng.shuffle(row)
    newest = rng.choice([2, 4], size=count)
    partner = np.where(newest == 2, 3, 6)
    self.positions = np.argmax(candidates == partner[:, None], axis=1)
    self.inputs = {
        F.CANDIDATE_ITEM_INDEX: candidates,
        F.CANDIDATE_SCORE: (rng.normal(size=candidates.shape) - 2.0 * (
            candidates == partner[:, None])).astype(np.float32),
        F.CONTEXT_ITEM_ID: np.stack([newest, np.full(count, P)], axis=1),
        F.USER_GENDER: np.full((count, 1), 2),
        F.USER_AGE: np.full((count, 1), 3),
    }


def _model(layer):
  keras.utils.set_random_seed(0)
  model = ranker.NextItemRanker(feature_config(), {"item_id": 8, "genre": 4,
                                                   "user_gender": 4},
                                layer, hidden_units=[16])
  model.compile(optimizer=keras.optimizers.Adam(0.02))
  return model


def test_the_ranker_learns_to_reorder_the_candidates():
  layer = _features(windows=[1])
  train, test = _Lists(512, 0), _Lists(128, 1)
  model = _model(layer)
  model.normalization.adapt(model.features(train.inputs))
  before = model.evaluate(test.inputs, test.positions, verbose=0,
                          return_dict=True)
  model.fit(train.inputs, train.positions, batch_size=64, epochs=15,
            verbose=0)
  after = model.evaluate(test.inputs, test.positions, verbose=0,
                         return_dict=True)
  scores = model(test.inputs).numpy()
  top = np.argmax(scores, axis=1)
  # Retrieval put the label low; the ranker puts it first.
  assert np.mean(top == test.positions) > 0.95
  assert after["loss"] < before["loss"] / 2


def test_padding_scores_the_floor_and_lists_without_their_label_weigh_zero():
  model = _model(_features(windows=[1]))
  lists = _Lists(4, 2)
  lists.inputs[F.CANDIDATE_ITEM_INDEX][:, -1] = P
  model.normalization.adapt(model.features(lists.inputs))
  scores = model(lists.inputs).numpy()
  np.testing.assert_array_equal(scores[:, -1], ranker.MASKED_SCORE)
  assert np.all(scores[:, :-1] > ranker.MASKED_SCORE)
  positions = tf.constant(lists.positions)
  alone = float(model.training_loss((
      {k: v[:1] for k, v in lists.inputs.items()}, positions[:1])))
  missed = tf.concat([positions[:1], -tf.ones([3], positions.dtype)], axis=0)
  assert float(model.training_loss((lists.inputs, missed))) == pytest.approx(
      alone, rel=1e-5)
  nothing = -tf.ones([4], positions.dtype)
  assert float(model.training_loss((lists.inputs, nothing))) == 0.0


def test_id_tables_take_the_narrowest_type_that_holds_the_ids():
  small = _features()
  small.build(None)
  assert small.neighbor_ids.dtype == tf.int16
  assert small.attribute_table.dtype == tf.int16
  wide = ranker.CandidateFeatures(
      np.zeros(40000), np.full([40000, 1], 39999), np.ones([40000, 1]),
      np.zeros([40000, 0]), recent_windows=[1])
  wide.build(None)
  assert wide.neighbor_ids.dtype == tf.int32
  # Item 39999's neighbour is itself: found through the int32 table.
  x = wide(tf.constant([[39999]]), tf.constant([[1.0]]),
           tf.constant([[39999]])).numpy()
  assert x[0, 0, 4] == 1.0
