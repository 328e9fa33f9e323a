"""Label encoder: the embedding of the item to be predicted."""
import tensorflow as tf
import tf_keras as keras

from components.model.feature_embeddings import PaddedEmbedding


class ItemEmbeddingLabelEncoder(keras.layers.Layer):
  """An item id -> its embedding; `candidates()` is the whole catalog.

  The full table is what the dot product scores against for the full softmax
  and for ranking the whole catalog at serving time.
  """

  def __init__(self, vocab_size: int, dim: int, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.dim = dim
    self.embedding = PaddedEmbedding(vocab_size, dim, name="item_embedding")
    # Built now: candidates() reads the table before any call.
    self.embedding.build((None,))

  def call(self, item_ids):
    return self.embedding(item_ids)

  def candidates(self) -> tf.Tensor:
    return self.embedding.table()
