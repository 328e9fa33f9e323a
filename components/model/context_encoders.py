"""Context encoders: embedded context positions -> one encoding per position.

Every encoder is a Keras layer called as `encoder(sequence, mask, training)`
with sequence [batch, length, dim] (oldest item first, padding at the end)
and mask [batch, length] (True = real item), returning [batch, length, units]
where position t depends only on positions 0..t (causal). That one property
serves both uses: training predicts every next item of a sequence at once,
and serving reads the position of the newest item, which padding after it
cannot change. Encoders are chosen by name (`model.encoder`).
"""
from typing import Any, Dict

import tensorflow as tf
import tf_keras as keras


def masked_mean(sequence: tf.Tensor, mask: tf.Tensor, axis: int = 1) -> tf.Tensor:
  """Mean over the unmasked entries of `axis`; zeros where all are masked."""
  weights = tf.cast(mask, sequence.dtype)[..., tf.newaxis]
  total = tf.reduce_sum(sequence * weights, axis=axis)
  return total / tf.maximum(tf.reduce_sum(weights, axis=axis), 1.0)


def _zero_padding(sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  return sequence * tf.cast(mask, sequence.dtype)[..., tf.newaxis]


class BagOfWordsEncoder(keras.layers.Layer):
  """Mean of the context so far: order-insensitive, causal running mean."""

  def call(self, sequence, mask, training=None):
    weights = tf.cast(mask, sequence.dtype)[..., tf.newaxis]
    total = tf.cumsum(sequence * weights, axis=1)
    return total / tf.maximum(tf.cumsum(weights, axis=1), 1.0)


class CNNEncoder(keras.layers.Layer):
  """Stacked causal Conv1D blocks with residual connections.

  With `dilated`, block i uses dilation 2**i (as NextItNet), so the receptive
  field doubles per block. Padding positions are zeroed before every block.
  """

  def __init__(self, filters: int = 64, kernel_size: int = 3, layers: int = 3,
               dilated: bool = True, dropout: float = 0.1, **kwargs):
    super().__init__(**kwargs)
    self.project = keras.layers.Dense(filters)
    self.blocks = [keras.layers.Conv1D(
        filters, kernel_size, padding="causal", activation="relu",
        dilation_rate=2 ** i if dilated else 1) for i in range(layers)]
    self.norms = [keras.layers.LayerNormalization(epsilon=1e-6)
                  for _ in range(layers)]
    self.dropout = keras.layers.Dropout(dropout)

  def call(self, sequence, mask, training=None):
    x = self.project(sequence)
    for block, norm in zip(self.blocks, self.norms):
      x = norm(x + self.dropout(block(_zero_padding(x, mask)),
                                training=training))
    return x


class RNNEncoder(keras.layers.Layer):
  """A (stacked) LSTM or GRU over the context.

  Unrolled on purpose: TFLite's fused LSTM op keeps its state between calls
  (a phone would see the previous query's history) and the looped GRU needs
  a fixed batch; unrolled cells convert to plain builtin ops. Padding follows
  the last item, so causal outputs never see it and no mask is needed.
  """

  def __init__(self, cell: str = "gru", units: int = 64, layers: int = 1,
               dropout: float = 0.1, **kwargs):
    super().__init__(**kwargs)
    rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    self.rnns = [rnn(units, return_sequences=True, unroll=True)
                 for _ in range(layers)]
    self.dropout = keras.layers.Dropout(dropout)

  def call(self, sequence, mask, training=None):
    x = _zero_padding(sequence, mask)
    for rnn in self.rnns:
      x = rnn(self.dropout(x, training=training))
    return x


class SelfAttentionEncoder(keras.layers.Layer):
  """Causal Transformer blocks with learned positions (as SASRec).

  Pre-layer-norm blocks: x += attention(norm(x)); x += feed_forward(norm(x)).
  A position attends to itself and earlier real items only.
  """

  def __init__(self, max_length: int, units: int = 64, layers: int = 2,
               heads: int = 1, dropout: float = 0.2, **kwargs):
    super().__init__(**kwargs)
    self.project = keras.layers.Dense(units)
    self.positions = keras.layers.Embedding(max_length, units,
                                            name="position_embedding")
    self.max_length = max_length
    self.attention = [keras.layers.MultiHeadAttention(
        heads, key_dim=units // heads, dropout=dropout) for _ in range(layers)]
    self.feed_forward = [keras.Sequential([
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(units)]) for _ in range(layers)]
    self.norms = [(keras.layers.LayerNormalization(epsilon=1e-6),
                   keras.layers.LayerNormalization(epsilon=1e-6))
                  for _ in range(layers)]
    self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6)
    self.dropout = keras.layers.Dropout(dropout)

  def call(self, sequence, mask, training=None):
    length = tf.shape(sequence)[1]
    x = self.project(sequence) + self.positions(tf.range(length))[tf.newaxis]
    x = _zero_padding(self.dropout(x, training=training), mask)
    causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
    attend = tf.logical_and(causal[tf.newaxis], mask[:, tf.newaxis, :])
    for attention, feed_forward, (norm1, norm2) in zip(
        self.attention, self.feed_forward, self.norms):
      h = norm1(x)
      x = x + self.dropout(attention(h, h, attention_mask=attend,
                                     training=training), training=training)
      x = x + self.dropout(feed_forward(norm2(x)), training=training)
      x = _zero_padding(x, mask)
    return self.final_norm(x)


def build_context_encoder(name: str, context_length: int,
                          model_config: Dict[str, Any]) -> keras.layers.Layer:
  """The encoder `name` with its settings from the model config."""
  c = model_config
  builders = {
      "bow": lambda: BagOfWordsEncoder(),
      "cnn": lambda: CNNEncoder(c["cnn_filters"], c["cnn_kernel_size"],
                                c["cnn_layers"], c["cnn_dilated"], c["dropout"]),
      "lstm": lambda: RNNEncoder("lstm", c["rnn_units"], c["rnn_layers"],
                                 c["dropout"]),
      "gru": lambda: RNNEncoder("gru", c["rnn_units"], c["rnn_layers"],
                                c["dropout"]),
      "attention": lambda: SelfAttentionEncoder(
          context_length, c["attention_units"], c["attention_layers"],
          c["attention_heads"], c["dropout"]),
  }
  if name not in builders:
    raise ValueError(f"unknown context encoder {name!r}; known: "
                     f"{', '.join(sorted(builders))}")
  return builders[name]()
