"""Feature-group embeddings: padding adds nothing, a slotted feature is the
mean of its values, and the groups insist on zero PAD rows."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import features as F
from components.model.feature_embeddings import (PaddedEmbedding,
                                                SequenceGroupEmbedding,
                                                StaticGroupEmbedding,
                                                slot_mean)
from tests.support.sessions import GENRE_SLOTS, feature_config


def _embedding(rows=6, dim=3):
  keras.utils.set_random_seed(1)
  embedding = PaddedEmbedding(rows, dim)
  embedding.build((None,))
  return embedding


def test_the_pad_row_is_zero_whatever_is_stored():
  embedding = _embedding()
  table = embedding.embeddings.numpy()
  assert np.abs(table[F.PAD_ID]).sum() > 0  # stored, but never read
  np.testing.assert_array_equal(embedding.table()[F.PAD_ID], 0.0)
  np.testing.assert_array_equal(embedding.table()[1:], table[1:])
  np.testing.assert_array_equal(embedding(tf.constant([[0, 3]]))[0],
                                [np.zeros(3), table[3]])


def test_slot_mean_is_the_mean_of_the_values_that_are_there():
  embedding = _embedding()
  table = embedding.embeddings.numpy()
  # Two items of three slots each: [2, 5, PAD] and nothing at all.
  got = slot_mean(embedding, tf.constant([[2, 5, 0, 0, 0, 0]]), slots=3)
  np.testing.assert_allclose(got[0], [(table[2] + table[5]) / 2,
                                      np.zeros(3)], rtol=1e-6)
  # One value per item: the lookup itself, zeros at padding.
  got = slot_mean(embedding, tf.constant([[4, 0]]), slots=1)
  np.testing.assert_array_equal(got[0], [table[4], np.zeros(3)])


def test_groups_need_zero_pad_rows():
  config = feature_config(item_dim=3, side_dim=3)
  history, user = config.groups
  plain = {f.name: keras.layers.Embedding(8, 3) for g in config.groups
           for f in g.features}
  with pytest.raises(TypeError, match="PaddedEmbedding"):
    SequenceGroupEmbedding(history, plain)
  with pytest.raises(TypeError, match="PaddedEmbedding"):
    StaticGroupEmbedding(user, plain)


def test_a_padding_position_embeds_to_zeros():
  config = feature_config(item_dim=3, side_dim=3)
  history = config.groups[0]
  layer = SequenceGroupEmbedding(
      history, {f.name: PaddedEmbedding(8, f.embedding_dim)
                for f in history.features})
  features = {F.CONTEXT_ITEM_ID: tf.constant([[3, 0]]),
              F.CONTEXT_RATING: tf.constant([[4, 0]]),
              F.CONTEXT_YEAR: tf.constant([[5, 0]]),
              F.CONTEXT_GENRE: tf.constant(
                  [[2, 3] + [0] * (2 * GENRE_SLOTS - 2)])}
  sequence, mask = layer(features)
  np.testing.assert_array_equal(mask, [[True, False]])
  assert np.abs(sequence[0, 0].numpy()).sum() > 0
  np.testing.assert_array_equal(sequence[0, 1], 0.0)
