"""The dual encoder: next-item targets, scoring from the newest position,
causal training (full and sampled softmax, OOV targets)."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import features as F
from components.lib.feature_config import SEQUENCE_ENCODERS
from components.lib.settings import ModelConfig
from components.model.dual_encoder import DualEncoder
from components.model.dual_encoder import next_item_targets, seen_before
from components.model.losses import FullSoftmaxLoss
from tests.support.sessions import GENRE_SLOTS, feature_config

LENGTH, DIM = 6, 8
MODEL = ModelConfig(encoder="bow", dropout=0.1, cnn_filters=8,
                    cnn_kernel_size=2, cnn_layers=2, rnn_units=8,
                    attention_units=8, attention_heads=2)
ITEMS, GENRES = 40, 6



def test_next_item_targets():
  context = tf.constant([[5, 6, 7, 0], [9, 0, 0, 0], [0, 0, 0, 0]], tf.int64)
  labels = tf.constant([8, 3, 4], tf.int64)
  np.testing.assert_array_equal(next_item_targets(context, labels),
                                [[6, 7, 8, 0], [3, 0, 0, 0], [0, 0, 0, 0]])


def batch(items, real_genres=True):
  """Transformed features for contexts of item ids (PAD-padded)."""
  items = np.array(items, np.int64)
  real = items != F.PAD_ID
  genres = np.repeat(np.where(real, 3, 0), GENRE_SLOTS, axis=1)
  if not real_genres:
    genres[:] = 0
  return {
      F.CONTEXT_ITEM_ID: items,
      F.CONTEXT_RATING: np.where(real, 5, 0),
      F.CONTEXT_YEAR: np.where(real, 9, 0),
      F.CONTEXT_GENRE: genres,
      F.USER_GENDER: np.full((len(items), 1), 2),
      F.USER_AGE: np.full((len(items), 1), 4),
  }


def dual_encoder(name="bow", loss="softmax", counts=None, exclude_seen=False):
  keras.utils.set_random_seed(0)
  model = DualEncoder(feature_config(item_dim=16), {
      "item_id": ITEMS, "genre": GENRES, "user_gender": 4}, LENGTH,
      dataclasses.replace(MODEL, encoder=name), item_counts=counts, loss=loss,
      num_negatives=10, exclude_seen=exclude_seen)
  model.compile(optimizer=keras.optimizers.Adam(0.05))
  return model


@pytest.mark.parametrize("name", SEQUENCE_ENCODERS)
def test_dual_encoder_scores_every_item_from_the_newest_position(name):
  model = dual_encoder(name)
  logits = model(batch([[3, 4, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0]]))
  assert logits.shape == (2, ITEMS)
  # Padding after the newest item does not matter; the items do.
  longer = batch([[3, 4, 0, 0, 0, 0]])
  longer[F.CONTEXT_RATING][0, 2:] = 7
  np.testing.assert_allclose(model(longer), logits[:1], atol=1e-5)
  assert not np.allclose(model(batch([[3, 6, 0, 0, 0, 0]])), logits[:1])


def causal_data(n=256):
  """Contexts where the next item is always the previous item + 1."""
  rng = np.random.default_rng(0)
  starts = rng.integers(2, ITEMS - LENGTH - 1, size=n)
  lengths = rng.integers(1, LENGTH + 1, size=n)
  items = np.zeros((n, LENGTH), np.int64)
  for row, (start, length) in enumerate(zip(starts, lengths)):
    items[row, :length] = np.arange(start, start + length)
  return batch(items), starts + lengths


@pytest.mark.parametrize("name", ["bow", "attention"])
def test_causal_training_lowers_the_loss_and_learns(name):
  x, y = causal_data()
  model = dual_encoder(name)
  dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
  history = model.fit(dataset, epochs=15, verbose=0)
  assert history.history["loss"][-1] < history.history["loss"][0] / 2
  if name == "attention":  # the newest item decides the next one
    top = np.argmax(model(x).numpy(), axis=1)
    assert np.mean(top == y) > 0.8


def test_sampled_softmax_approaches_full_softmax_when_trained():
  x, y = causal_data()
  counts = np.ones(ITEMS, np.float32)
  counts[:F.NUM_RESERVED_IDS] = 0.0
  model = dual_encoder("attention", loss="sampled_softmax", counts=counts)
  dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
  full = FullSoftmaxLoss()
  queries = model.encode_context(x)
  before = float(full(queries, y, model.label_encoder.candidates()))
  model.fit(dataset, epochs=15, verbose=0)
  after = float(full(model.encode_context(x), y,
                     model.label_encoder.candidates()))
  assert after < before / 2


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
def test_out_of_vocabulary_targets_are_not_trained_on(loss, exclude_seen):
  # A capped vocabulary: items outside it are OOV in contexts and labels.
  x, y = causal_data(64)
  x[F.CONTEXT_ITEM_ID][:, 1] = np.where(x[F.CONTEXT_ITEM_ID][:, 1] > 0,
                                        F.OOV_ID, 0)
  y = np.where(np.arange(len(y)) % 2 == 0, F.OOV_ID, y)
  counts = np.ones(ITEMS, np.float32)
  counts[:F.NUM_RESERVED_IDS] = 0.0  # OOV has no train count
  model = dual_encoder("bow", loss=loss, counts=counts,
                       exclude_seen=exclude_seen)
  history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(32),
                      epochs=2, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))


def attention_model(**kwargs) -> DualEncoder:
  keras.utils.set_random_seed(0)
  return DualEncoder(feature_config(item_dim=16), {
      "item_id": ITEMS, "genre": GENRES, "user_gender": 4}, LENGTH,
      dataclasses.replace(MODEL, encoder="attention", dropout=0.0), **kwargs)


def next_item_loss(model: DualEncoder, x, wanted) -> float:
  """The mean full-softmax loss of the (row, position, target) predictions
  `wanted`, computed by hand from the model's queries."""
  queries, _ = model.encode_positions(x, training=False)
  logits = tf.matmul(queries, model.label_encoder.candidates(),
                     transpose_b=True)
  return float(np.mean([-tf.nn.log_softmax(logits[row, position])[target]
                        for row, position, target in wanted]))


def test_only_the_windows_own_items_are_targets():
  """A window's context items before own_items_from belong to an older
  window: the loss averages the positions predicting own items only."""
  model = attention_model()
  x = batch([[3, 4, 5, 6, 0, 0], [7, 8, 0, 0, 0, 0]])
  y = np.array([9, 10])
  x[F.OWN_ITEMS_FROM] = np.array([3, 0])
  # Row 0 predicts its own 6 (from position 2) and the label 9 (position
  # 3); row 1 owns everything: 8 and the label 10.
  expected = next_item_loss(model, x, [(0, 2, 6), (0, 3, 9), (1, 0, 8),
                                       (1, 1, 10)])
  assert float(model.training_loss((x, y))) == pytest.approx(expected,
                                                             rel=1e-5)
  # Without the feature every item of the window is a target.
  del x[F.OWN_ITEMS_FROM]
  assert float(model.training_loss((x, y))) != pytest.approx(expected,
                                                             rel=1e-3)


def test_held_out_ranker_labels_are_no_targets():
  """The retrieval model that proposes the ranker's train candidates never
  trains on the ranker's labels: items of a window from
  ranker_labels_from on are no targets (they stay context)."""
  model = attention_model(hold_out_ranker_labels=True)
  x = batch([[3, 4, 5, 6, 0, 0], [7, 8, 0, 0, 0, 0]])
  y = np.array([9, 10])
  x[F.OWN_ITEMS_FROM] = np.array([0, 0])
  # Row 0's items from index 3 on (6 and the label 9) are ranker labels;
  # row 1 has none (its item count).
  x[F.RANKER_LABELS_FROM] = np.array([3, 3])
  expected = next_item_loss(model, x, [(0, 0, 4), (0, 1, 5), (1, 0, 8),
                                       (1, 1, 10)])
  assert float(model.training_loss((x, y))) == pytest.approx(expected,
                                                             rel=1e-5)
  # The retrieval model that is pushed trains on them.
  model.hold_out_ranker_labels = False
  assert float(model.training_loss((x, y))) != pytest.approx(expected,
                                                             rel=1e-3)


def test_seen_before_marks_the_items_at_or_before_each_position():
  context = tf.constant([[5, 3, 7, 0], [2, 2, 4, 6]], tf.int64)
  positions = tf.constant([[0, 0], [0, 2], [1, 1], [1, 3]], tf.int64)
  seen = seen_before(context, positions, 8)
  assert [list(np.flatnonzero(row)) for row in seen(tf.range(8)).numpy()
          ] == [[5], [3, 5, 7], [2], [2, 4, 6]]
  # Only the ids asked for, in their order.
  np.testing.assert_array_equal(seen(tf.constant([7, 2])).numpy(),
                                [[0, 0], [1, 0], [0, 1], [0, 1]])


def test_excluding_seen_items_leaves_them_out_of_each_softmax():
  """With exclude_seen a prediction's softmax leaves out the window's items
  up to its position, except its own target (an item seen again)."""
  model = attention_model(exclude_seen=True)
  # Row 1 sees item 7 again as its label.
  x = batch([[3, 4, 5, 0, 0, 0], [7, 8, 0, 0, 0, 0]])
  y = np.array([9, 7])
  queries, _ = model.encode_positions(x, training=False)
  logits = tf.matmul(queries, model.label_encoder.candidates(),
                     transpose_b=True).numpy()
  wanted = [(0, 0, 4, [3]), (0, 1, 5, [3, 4]), (0, 2, 9, [3, 4, 5]),
            (1, 0, 8, [7]), (1, 1, 7, [8])]
  losses = []
  for row, position, target, seen in wanted:
    kept = np.delete(np.arange(ITEMS), seen)
    scores = logits[row, position, kept]
    losses.append(-tf.nn.log_softmax(scores)[list(kept).index(target)])
  assert float(model.training_loss((x, y))) == pytest.approx(
      float(np.mean(losses)), rel=1e-5)
  # Every item competes without it: a larger loss.
  model.exclude_seen = False
  assert float(model.training_loss((x, y))) > float(np.mean(losses)) + 0.01
