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


def test_successor_table_counts_the_next_items_within_the_window():
  # Histories, oldest first; 1 (OOV) and PAD are no items (2, 1, 3 is 2, 3).
  histories = [np.array([2, 3, 4]), np.array([2, 1, 3]), np.array([3, 5, 0])]
  ids, probability = ranker.successor_table(histories, 6, 2, window=2)
  # 2 -> 3 twice (1 each), 2 -> 4 two steps later (1/2): P 2/2.5, 0.5/2.5.
  np.testing.assert_array_equal(ids[2], [3, 4])
  np.testing.assert_allclose(probability[2], [0.8, 0.2], rtol=1e-6)
  np.testing.assert_array_equal(ids[3], [4, 5])  # a tie: the lower id first
  np.testing.assert_allclose(probability[3], [0.5, 0.5], rtol=1e-6)
  # Nothing follows 4, 5 or PAD.
  for item in (0, 4, 5):
    np.testing.assert_array_equal(ids[item], [P, P])
    np.testing.assert_array_equal(probability[item], [0.0, 0.0])
  # P is over all of an item's successors, before the table's cut.
  ids, probability = ranker.successor_table(histories, 6, 1, window=2)
  np.testing.assert_array_equal(ids[:, 0], [P, P, 3, 4, P, P])
  np.testing.assert_allclose(probability[2], [0.8], rtol=1e-6)
  # Next items only: 2 -> 4 is two steps.
  _, probability = ranker.successor_table(histories, 6, 2, window=1)
  np.testing.assert_allclose(probability[2], [1.0, 0.0], rtol=1e-6)


def test_recent_items_are_the_newest_first():
  context = tf.constant([[5, 6, 7, P], [9, P, P, P], [P, P, P, P]])
  np.testing.assert_array_equal(ranker.recent_items(context, 3),
                                [[7, 6, 5], [9, P, P], [P, P, P]])


def _features(**kwargs):
  """Items 2..7: popularity log(1 + id); 2 and 3 follow each other (P
  0.5), 6 follows 4 (P 0.25); one attribute slot."""
  num_items = 8
  successor_ids = np.zeros([num_items, 2], np.int32)
  successor_probability = np.zeros([num_items, 2], np.float32)
  successor_ids[2, 0], successor_probability[2, 0] = 3, 0.5
  successor_ids[3, 0], successor_probability[3, 0] = 2, 0.5
  successor_ids[4, 0], successor_probability[4, 0] = 6, 0.25
  attributes = np.array([[P], [P], [10], [11], [10], [12], [11], [13]],
                        np.int32)
  return ranker.CandidateFeatures(
      np.log1p(np.arange(num_items)), successor_ids, successor_probability,
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
  # P(candidate | item) of the last 1 item (4): only 6 follows 4; of the
  # last 2 (4, 2): 3 follows 2, 6 follows 4; the sum over the window and the
  # largest, each log(1 + p / PROBABILITY_UNIT).
  follows = np.array([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25],
                      [0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_allclose(valid[:, 4:8],
                             np.log1p(follows / ranker.PROBABILITY_UNIT),
                             rtol=1e-5)
  # Attributes: 3 has 11 (not among 2's 10 and 4's 10), 6 has 11 too, 7 13.
  np.testing.assert_allclose(valid[:, 8], [0.0, 0.0, 0.0])
  x = layer(tf.constant([[4, 5]]), tf.constant([[1.0, 0.5]]),
            tf.constant([[2, P, P]])).numpy()[0]
  np.testing.assert_allclose(x[:, 8], [1.0, 0.0])


class _Lists:
  """Synthetic lists: the label is the candidate that follows the newest
  context item, at a random position with a low retrieval score."""

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
  assert small.successor_ids.dtype == tf.int16
  assert small.attribute_table.dtype == tf.int16
  wide = ranker.CandidateFeatures(
      np.zeros(40000), np.full([40000, 1], 39999), np.ones([40000, 1]),
      np.zeros([40000, 0]), recent_windows=[1])
  wide.build(None)
  assert wide.successor_ids.dtype == tf.int32
  # Item 39999 follows itself: found through the int32 table.
  x = wide(tf.constant([[39999]]), tf.constant([[1.0]]),
           tf.constant([[39999]])).numpy()
  assert x[0, 0, 4] == pytest.approx(np.log1p(1 / ranker.PROBABILITY_UNIT))
