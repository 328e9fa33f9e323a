"""Model parts and the dual encoder: shapes, causality, padding, learning."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import features as F
from components.model import catalog_ranking
from components.model.context_encoders import build_context_encoder
from components.model.context_encoders import masked_mean
from components.model.dual_encoder import DualEncoder
from components.model.dual_encoder import next_item_targets
from components.model.label_encoders import ItemEmbeddingLabelEncoder
from components.model.losses import FullSoftmaxLoss, SampledSoftmaxLoss
from components.model.similarity import DotProductSimilarity
from tests.sessions import GENRE_SLOTS, feature_config

ENCODERS = ("bow", "cnn", "lstm", "gru", "attention")
LENGTH, DIM = 6, 8
MODEL = {"encoder": "bow", "dropout": 0.1, "share_item_embeddings": True,
         "cnn_filters": 8, "cnn_kernel_size": 2, "cnn_layers": 2,
         "cnn_dilated": True, "rnn_units": 8, "rnn_layers": 1,
         "attention_units": 8, "attention_layers": 2, "attention_heads": 2}
ITEMS, GENRES = 40, 6


def encoder(name):
  keras.utils.set_random_seed(1)
  return build_context_encoder(name, LENGTH, MODEL)


def sequence_and_mask(real):
  """A random [2, LENGTH, DIM] sequence whose rows have `real` items."""
  sequence = tf.random.stateless_normal([2, LENGTH, DIM], seed=[1, 2])
  mask = tf.constant([[i < r for i in range(LENGTH)] for r in real])
  return sequence, mask


@pytest.mark.parametrize("name", ENCODERS)
def test_encoders_give_one_encoding_per_position(name):
  sequence, mask = sequence_and_mask([4, 6])
  out = encoder(name)(sequence, mask)
  assert out.shape[:2] == (2, LENGTH)
  assert np.all(np.isfinite(out.numpy()))


@pytest.mark.parametrize("name", ENCODERS)
def test_padding_never_changes_real_positions(name):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([4, 4])
  # Same real items, different garbage in the padded positions.
  noisy = tf.concat([sequence[:, :4], 100.0 + sequence[:, 4:]], axis=1)
  np.testing.assert_allclose(layer(sequence, mask)[:, :4],
                             layer(noisy, mask)[:, :4], atol=1e-5)


@pytest.mark.parametrize("name", ENCODERS)
def test_encoders_are_causal(name):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([6, 6])
  changed = tf.concat([sequence[:, :3], sequence[:, 3:] * -2.0], axis=1)
  before, after = layer(sequence, mask), layer(changed, mask)
  np.testing.assert_allclose(before[:, :3], after[:, :3], atol=1e-5)
  assert not np.allclose(before[:, 3:], after[:, 3:])


@pytest.mark.parametrize("name", ENCODERS)
def test_newest_is_the_newest_position_of_the_whole_encoding(name):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([3, 6])
  whole = layer(sequence, mask).numpy()
  np.testing.assert_allclose(layer.newest(sequence, mask),
                             whole[[0, 1], [2, 5]], atol=1e-5)


@pytest.mark.parametrize("name, sensitive", [
    ("bow", False), ("cnn", True), ("lstm", True), ("gru", True),
    ("attention", True)])
def test_order_sensitivity(name, sensitive):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([4, 4])
  swapped = tf.concat([sequence[:, 1:2], sequence[:, 0:1], sequence[:, 2:]],
                      axis=1)
  # The encoding after the newest item (position 3) of the same four items.
  same = np.allclose(layer(sequence, mask)[:, 3], layer(swapped, mask)[:, 3],
                     atol=1e-5)
  assert same != sensitive


def test_unknown_encoder_name_is_an_error():
  with pytest.raises(ValueError, match="unknown context encoder 'rnn9'"):
    build_context_encoder("rnn9", LENGTH, MODEL)


def test_masked_mean_ignores_padding_and_handles_empty():
  sequence = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                          [[5.0, 5.0], [7.0, 7.0], [9.0, 9.0]]])
  mask = tf.constant([[True, True, False], [False, False, False]])
  np.testing.assert_allclose(masked_mean(sequence, mask),
                             [[2.0, 3.0], [0.0, 0.0]])


def test_next_item_targets():
  context = tf.constant([[5, 6, 7, 0], [9, 0, 0, 0], [0, 0, 0, 0]], tf.int64)
  labels = tf.constant([8, 3, 4], tf.int64)
  np.testing.assert_array_equal(next_item_targets(context, labels),
                                [[6, 7, 8, 0], [3, 0, 0, 0], [0, 0, 0, 0]])


def test_label_encoder_and_similarity_shapes():
  labels = ItemEmbeddingLabelEncoder(ITEMS, 8)
  assert labels.candidates().shape == (ITEMS, 8)
  logits = DotProductSimilarity()(tf.ones([4, 8]), labels.candidates())
  assert logits.shape == (4, ITEMS)
  np.testing.assert_allclose(
      logits[0], tf.reduce_sum(labels.candidates(), axis=1), rtol=1e-5)


def test_ranking_counts_ties_against_the_target():
  scores = tf.constant([[0.1, 0.9, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_array_equal(
      ranking.target_ranks(scores, tf.constant([2, 1])), [2, 3])
  excluded = ranking.exclude_items(scores, tf.constant([[3, 0], [2, 0]]))
  assert excluded[0, 3] == ranking.EXCLUDED_SCORE  # seen
  assert excluded[0, 0] == ranking.EXCLUDED_SCORE  # PAD
  assert excluded[0, 1] == ranking.EXCLUDED_SCORE  # OOV
  assert excluded[0, 2] == 0.5


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


def dual_encoder(name="bow", loss="softmax", counts=None):
  keras.utils.set_random_seed(0)
  model = DualEncoder(feature_config(item_dim=16), {
      "item_id": ITEMS, "genre": GENRES, "user_gender": 4}, LENGTH,
      {**MODEL, "encoder": name}, item_counts=counts, loss=loss,
      num_negatives=10)
  model.compile(optimizer=keras.optimizers.Adam(0.05))
  return model


@pytest.mark.parametrize("name", ENCODERS)
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


@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
def test_out_of_vocabulary_targets_are_not_trained_on(loss):
  # A capped vocabulary: items outside it are OOV in contexts and labels.
  x, y = causal_data(64)
  x[F.CONTEXT_ITEM_ID][:, 1] = np.where(x[F.CONTEXT_ITEM_ID][:, 1] > 0,
                                        F.OOV_ID, 0)
  y = np.where(np.arange(len(y)) % 2 == 0, F.OOV_ID, y)
  counts = np.ones(ITEMS, np.float32)
  counts[:F.NUM_RESERVED_IDS] = 0.0  # OOV has no train count
  model = dual_encoder("bow", loss=loss, counts=counts)
  history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(32),
                      epochs=2, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))


def test_sampled_softmax_is_full_softmax_outside_training():
  candidates = tf.random.stateless_normal([ITEMS, 4], seed=[3, 4])
  queries = tf.random.stateless_normal([5, 4], seed=[5, 6])
  targets = tf.constant([2, 3, 4, 5, 6])
  counts = [0.0, 0.0] + [1.0] * (ITEMS - 2)
  np.testing.assert_allclose(
      SampledSoftmaxLoss(counts, 5)(queries, targets, candidates),
      FullSoftmaxLoss()(queries, targets, candidates), rtol=1e-6)
