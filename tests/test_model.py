"""Model parts and the dual encoder: shapes, masking, learning."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components import features as F
from components.model.context_encoders import BagOfWordsEncoder
from components.model.context_encoders import build_context_encoder
from components.model.context_encoders import masked_mean
from components.model.dual_encoder import DualEncoder
from components.model.label_encoders import ItemEmbeddingLabelEncoder
from components.model.similarity import DotProductSimilarity

ITEMS, GENRES, LENGTH, GENRE_LENGTH = 40, 8, 5, 6


def batch(items, genres=None):
  items = np.array(items, np.int64)
  genres = np.array(genres if genres is not None else
                    [[2] * GENRE_LENGTH] * len(items), np.int64)
  real = items != F.PAD_ID
  return {
      F.CONTEXT_ITEM: items,
      F.CONTEXT_RATING_BUCKET: np.where(real, 5, 0),
      F.CONTEXT_YEAR_BUCKET: np.where(real, 9, 0),
      F.CONTEXT_GENRE_ID: genres,
  }


def test_masked_mean_ignores_padding_and_handles_empty():
  sequence = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                          [[5.0, 5.0], [7.0, 7.0], [9.0, 9.0]]])
  mask = tf.constant([[True, True, False], [False, False, False]])
  np.testing.assert_allclose(masked_mean(sequence, mask),
                             [[2.0, 3.0], [0.0, 0.0]])


def test_bag_of_words_is_order_insensitive():
  encoder = BagOfWordsEncoder()
  sequence = tf.random.normal([2, 4, 3], seed=1)
  mask = tf.constant([[True, True, True, False]] * 2)
  reversed_sequence = tf.concat([tf.reverse(sequence[:, :3], [1]),
                                 sequence[:, 3:]], axis=1)
  np.testing.assert_allclose(encoder(sequence, mask),
                             encoder(reversed_sequence, mask), atol=1e-6)


def test_unknown_encoder_name_is_an_error():
  with pytest.raises(ValueError, match="unknown context encoder 'rnn9'"):
    build_context_encoder("rnn9")


def test_label_encoder_and_similarity_shapes():
  labels = ItemEmbeddingLabelEncoder(ITEMS, 8)
  assert labels.candidates().shape == (ITEMS, 8)
  assert labels(tf.constant([1, 2, 3])).shape == (3, 8)
  logits = DotProductSimilarity()(tf.ones([4, 8]), labels.candidates())
  assert logits.shape == (4, ITEMS)
  np.testing.assert_allclose(
      logits[0], tf.reduce_sum(labels.candidates(), axis=1), rtol=1e-5)


@pytest.mark.parametrize("share", [True, False])
def test_dual_encoder_scores_every_item(share):
  model = DualEncoder(ITEMS, GENRES, embedding_dim=8, side_embedding_dim=4,
                      share_item_embeddings=share)
  logits = model(batch([[3, 4, 0, 0, 0], [5, 0, 0, 0, 0], [0] * LENGTH]))
  assert logits.shape == (3, ITEMS)


def test_padding_never_changes_the_output():
  model = DualEncoder(ITEMS, GENRES, embedding_dim=8, side_embedding_dim=4)
  short = batch([[3, 4, 0, 0, 0]], genres=[[2, 3, 0, 0, 0, 0]])
  # Same context; garbage in the padded side-feature and genre slots.
  noisy = dict(short)
  noisy[F.CONTEXT_RATING_BUCKET] = np.array([[5, 5, 7, 8, 9]])
  noisy[F.CONTEXT_YEAR_BUCKET] = np.array([[9, 9, 3, 4, 5]])
  np.testing.assert_allclose(model(short), model(noisy), atol=1e-6)
  different = batch([[3, 6, 0, 0, 0]], genres=[[2, 3, 0, 0, 0, 0]])
  assert not np.allclose(model(short), model(different))


def test_a_few_steps_lower_the_loss():
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  # Next item = last context item + 1: learnable from the context.
  last = rng.integers(2, ITEMS - 1, size=512)
  items = np.zeros((512, LENGTH), np.int64)
  items[:, 0] = last
  x = batch(items)
  y = last + 1
  model = DualEncoder(ITEMS, GENRES, embedding_dim=16, side_embedding_dim=4)
  model.compile(optimizer=keras.optimizers.Adam(0.05),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  before = model.evaluate(x, y, verbose=0)
  model.fit(x, y, epochs=20, batch_size=128, verbose=0)
  after = model.evaluate(x, y, verbose=0)
  assert after < before / 3, (before, after)
