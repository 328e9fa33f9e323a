"""The rating model's parts: causal pooling of the rated history, the item
tower's attribute lookup, windows as positions."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib.settings import RatingModelConfig
from components.model.rating_model import ItemTower, RatedHistoryPooling
from components.model.rating_model import RatingModel, window_positions
from tests.support.sessions import feature_config

PAD = F.PAD_ID


def test_causal_pooling_at_a_position_is_the_full_pooling_of_its_prefix():
  pooling = RatedHistoryPooling()
  items = tf.random.stateless_normal([2, 5, 3], seed=[1, 2])
  ratings = tf.constant([[1.0, -1.0, 0.5, 2.0, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]])
  mask = tf.constant([[True] * 4 + [False], [True, True, False, False, False]])
  causal = pooling(items, ratings, mask, causal=True).numpy()
  assert causal.shape == (2, 5, 2 * 3 + 2)
  for row in range(2):
    for position in range(5):
      prefix = pooling(items[row:row + 1, :position],
                       ratings[row:row + 1, :position],
                       mask[row:row + 1, :position]).numpy()[0]
      np.testing.assert_allclose(causal[row, position], prefix, atol=1e-6)
  # Spelled out: the first row's position 2 pools items 0 and 1.
  expected_mean = (items[0, 0] + items[0, 1]).numpy() / 2
  np.testing.assert_allclose(causal[0, 2, :3], expected_mean, atol=1e-6)
  np.testing.assert_allclose(causal[0, 2, 6], 0.0, atol=1e-6)  # (1 - 1) / 2
  np.testing.assert_allclose(causal[0, 2, 7], np.log1p(2.0), atol=1e-6)
  # Padding adds nothing: the second row is the same at positions 2..4.
  np.testing.assert_allclose(causal[1, 2], causal[1, 4], atol=1e-6)
  # An empty history pools to zeros.
  np.testing.assert_allclose(causal[:, 0], 0.0)


def test_item_tower_looks_attributes_up_by_id():
  genre = fc.Feature("context_genre", "STRING", 2, 4, vocabulary="genre")
  year = fc.Feature("context_year", "INT", 1, 4,
                    buckets=fc.Buckets(1900, 10, 5))
  # Items 2 and 3 share every attribute; item 4 has none (PAD).
  table = np.array([[0, 0, 0], [0, 0, 0], [2, 3, 4], [2, 3, 4], [0, 0, 0]])
  keras.utils.set_random_seed(3)
  tower = ItemTower(5, 6, [genre, year], table, {"genre": 5})
  vectors, bias = tower(tf.constant([[2, 3, 4]]))
  vectors = vectors.numpy()
  assert vectors.shape == (1, 3, 6 + 4 + 4) and bias.shape == (1, 3)
  np.testing.assert_allclose(vectors[0, 0, 6:], vectors[0, 1, 6:])
  assert not np.allclose(vectors[0, 0, :6], vectors[0, 1, :6])  # own ids
  np.testing.assert_allclose(vectors[0, 2, 6:], 0.0)
  np.testing.assert_allclose(bias, 0.0)  # biases start at zero
  with pytest.raises(ValueError, match="attribute table"):
    ItemTower(6, 6, [genre, year], table, {"genre": 5})


def test_window_positions_put_the_label_after_the_padding():
  items, ratings = window_positions(
      {F.CONTEXT_ITEM_ID: tf.constant([[5, 6, PAD]]),
       F.CONTEXT_RATING_VALUE: tf.constant([[4.0, 2.0, 0.0]])},
      tf.constant([7]), tf.constant([5.0]))
  np.testing.assert_array_equal(items, [[5, 6, PAD, 7]])
  np.testing.assert_allclose(ratings, [[4.0, 2.0, 0.0, 5.0]])


def test_a_window_trains_on_its_own_ratings_only():
  """With only the label its own (an older window holds the whole
  context), the training loss is the label's squared error after the whole
  context: what evaluation computes."""
  config = feature_config(item_dim=4, side_dim=2)
  sizes = {"item_id": 12, "genre": 5, "user_gender": 4}
  attributes = config.item_attributes()
  table = np.zeros([12, sum(f.length for f in attributes)], np.int32)
  keras.utils.set_random_seed(0)
  model = RatingModel(config, sizes, attributes, table, 3.5,
                      RatingModelConfig(embedding_dim=4, hidden_units=[8],
                                        dropout=0.0))
  x = {F.CONTEXT_ITEM_ID: np.array([[2, 3, 4], [5, 6, PAD]]),
       F.CONTEXT_RATING_VALUE: np.array([[4.0, 1.0, 5.0], [2.0, 3.0, 0.0]],
                                        np.float32),
       F.LABEL_ITEM_ID: np.array([7, 8]),
       F.USER_GENDER: np.array([[2], [3]]), F.USER_AGE: np.array([[3], [4]]),
       F.OWN_ITEMS_FROM: np.array([3, 2])}
  y = np.array([4.5, 2.0], np.float32)
  label_error = np.mean((model(x).numpy() - y) ** 2)
  assert float(model.training_loss((x, y))) == pytest.approx(label_error,
                                                             rel=1e-5)
  x[F.OWN_ITEMS_FROM] = np.array([0, 0])
  assert float(model.training_loss((x, y))) != pytest.approx(label_error,
                                                             rel=1e-3)
