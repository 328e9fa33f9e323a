"""Context encoders: a sequence of embedded context positions -> one vector.

Each encoder is a Keras layer called as `encoder(sequence, mask)` with
sequence [batch, length, dim] and mask [batch, length] (True = real item), and
returns [batch, output_dim]. Padding must never change the output. They are
chosen by name (`model.encoder`) through `CONTEXT_ENCODERS`.
"""
import tensorflow as tf
import tf_keras as keras


def masked_mean(sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """Mean over the unmasked positions; zeros for an empty sequence."""
  weights = tf.cast(mask, sequence.dtype)[..., tf.newaxis]
  total = tf.reduce_sum(sequence * weights, axis=1)
  count = tf.reduce_sum(weights, axis=1)
  return total / tf.maximum(count, 1.0)


class BagOfWordsEncoder(keras.layers.Layer):
  """Masked mean of the context embeddings (order-insensitive)."""

  def call(self, sequence, mask):
    return masked_mean(sequence, mask)


CONTEXT_ENCODERS = {
    "bow": BagOfWordsEncoder,
}


def build_context_encoder(name: str, **kwargs) -> keras.layers.Layer:
  if name not in CONTEXT_ENCODERS:
    raise ValueError(f"unknown context encoder {name!r}; known: "
                     f"{', '.join(sorted(CONTEXT_ENCODERS))}")
  return CONTEXT_ENCODERS[name](name=f"{name}_encoder", **kwargs)
