"""Embeds the transformed context features for the context encoder."""
import tensorflow as tf
import tf_keras as keras

from components import features as F


class ContextFeatureEmbedding(keras.layers.Layer):
  """Context features -> (sequence, mask, genres, genre_mask).

  Each context position is its item embedding concatenated with the
  embeddings of its rating and year buckets; the context's genres are a
  separate bag (they are not aligned with positions). Masks are True on real
  entries, False on PAD.
  """

  def __init__(self, item_embedding: keras.layers.Embedding,
               genre_vocab_size: int, side_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.item_embedding = item_embedding
    self.rating_embedding = keras.layers.Embedding(
        F.NUM_RATING_BUCKETS, side_dim, name="rating_embedding")
    self.year_embedding = keras.layers.Embedding(
        F.NUM_YEAR_BUCKETS, side_dim, name="year_embedding")
    self.genre_embedding = keras.layers.Embedding(
        genre_vocab_size, side_dim, name="genre_embedding")

  def call(self, features):
    items = features[F.CONTEXT_ITEM]
    sequence = tf.concat([
        self.item_embedding(items),
        self.rating_embedding(features[F.CONTEXT_RATING_BUCKET]),
        self.year_embedding(features[F.CONTEXT_YEAR_BUCKET]),
    ], axis=-1)
    genres = features[F.CONTEXT_GENRE_ID]
    return (sequence, tf.not_equal(items, F.PAD_ID),
            self.genre_embedding(genres), tf.not_equal(genres, F.PAD_ID))
