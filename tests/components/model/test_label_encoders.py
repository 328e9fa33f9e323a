"""The label tower and the dot-product similarity."""
import numpy as np
import tensorflow as tf

from components.model.label_encoders import ItemEmbeddingLabelEncoder
from components.model.similarity import DotProductSimilarity

ITEMS = 40


def test_label_encoder_and_similarity_shapes():
  labels = ItemEmbeddingLabelEncoder(ITEMS, 8)
  assert labels.candidates().shape == (ITEMS, 8)
  logits = DotProductSimilarity()(tf.ones([4, 8]), labels.candidates())
  assert logits.shape == (4, ITEMS)
  np.testing.assert_allclose(
      logits[0], tf.reduce_sum(labels.candidates(), axis=1), rtol=1e-5)
