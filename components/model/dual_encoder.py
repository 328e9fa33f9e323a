"""The dual encoder: context tower and label tower scored by a dot product.

logits = similarity(context_encoder(context), label_encoder.candidates()):
one logit per item id (including PAD and OOV, which are never labels and are
excluded when ranking), trained with a full softmax over the catalog.
"""
import tensorflow as tf
import tf_keras as keras

from components.model.context_encoders import build_context_encoder
from components.model.context_encoders import masked_mean
from components.model.context_features import ContextFeatureEmbedding
from components.model.label_encoders import ItemEmbeddingLabelEncoder
from components.model.similarity import DotProductSimilarity


class DualEncoder(keras.Model):
  """Next-item retrieval model over transformed context features."""

  def __init__(self, item_vocab_size: int, genre_vocab_size: int,
               encoder: str = "bow", embedding_dim: int = 64,
               side_embedding_dim: int = 16, share_item_embeddings: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    self.label_encoder = ItemEmbeddingLabelEncoder(
        item_vocab_size, embedding_dim, name="label_encoder")
    item_embedding = (self.label_encoder.embedding if share_item_embeddings
                      else keras.layers.Embedding(
                          item_vocab_size, embedding_dim,
                          name="context_item_embedding"))
    self.context_embedding = ContextFeatureEmbedding(
        item_embedding, genre_vocab_size, side_embedding_dim,
        name="context_embedding")
    self.context_encoder = build_context_encoder(encoder)
    self.projection = keras.layers.Dense(embedding_dim, name="projection")
    self.similarity = DotProductSimilarity(name="similarity")

  def encode_context(self, features) -> tf.Tensor:
    sequence, mask, genres, genre_mask = self.context_embedding(features)
    pooled = tf.concat([self.context_encoder(sequence, mask),
                        masked_mean(genres, genre_mask)], axis=-1)
    return self.projection(pooled)

  def call(self, features):
    return self.similarity(self.encode_context(features),
                           self.label_encoder.candidates())
