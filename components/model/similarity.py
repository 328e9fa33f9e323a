"""Similarity between context encodings and candidate (label) encodings."""
import tensorflow as tf
import tf_keras as keras


class DotProductSimilarity(keras.layers.Layer):
  """[batch, dim] x [candidates, dim] -> logits [batch, candidates]."""

  def call(self, queries, candidates):
    return tf.matmul(queries, candidates, transpose_b=True)
