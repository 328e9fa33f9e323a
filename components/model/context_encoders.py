"""Context encoders: embedded context positions -> one encoding per position.

Every encoder is a Keras layer called as `encoder(sequence, mask, training)`
with sequence [batch, length, dim] (oldest item first, padding at the end)
and mask [batch, length] (True = real item), returning [batch, length, units]
where position t depends only on positions 0..t (causal). That one property
serves both uses: training predicts every next item of a sequence at once,
and serving reads the position of the newest item, which padding after it
cannot change. `encoder.newest(sequence, mask)` returns only the newest
position's encoding [batch, units]; serving calls it, and an encoder may
compute it more cheaply than the whole sequence. Encoders are chosen by name
(`model.encoder`).
"""
import tensorflow as tf
import tf_keras as keras

from components.lib.settings import ModelConfig


def masked_mean(sequence: tf.Tensor, mask: tf.Tensor, axis: int = 1) -> tf.Tensor:
  """Mean over the unmasked entries of `axis`; zeros where all are masked."""
  weights = tf.cast(mask, sequence.dtype)[..., tf.newaxis]
  if sequence.shape[axis] == 1:  # the same, in two ops instead of six
    return tf.squeeze(sequence * weights, axis=axis)
  total = tf.reduce_sum(sequence * weights, axis=axis)
  return total / tf.maximum(tf.reduce_sum(weights, axis=axis), 1.0)


def _zero_padding(sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  return sequence * tf.cast(mask, sequence.dtype)[..., tf.newaxis]


def causal_attention_mask(mask: tf.Tensor, window: int = 0) -> tf.Tensor:
  """[batch, length, length]: query t may attend to real items 0..t, or with
  `window` to the `window` most recent of them (t - window + 1..t)."""
  length = tf.shape(mask)[1]
  # Row t (query), column j (key): keep j <= t, and t - j < window.
  causal = tf.linalg.band_part(tf.ones([length, length], tf.bool),
                               window - 1 if window else -1, 0)
  return tf.logical_and(causal[tf.newaxis], mask[:, tf.newaxis, :])


def newest_position(mask: tf.Tensor) -> tf.Tensor:
  """Index of the newest real item per row (0 for an empty context)."""
  return tf.maximum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1) - 1, 0)


class ContextEncoder(keras.layers.Layer):
  """Base: `call` encodes every position, `newest` the newest one."""

  def newest(self, sequence, mask):
    return tf.gather(self(sequence, mask, training=False),
                     newest_position(mask), batch_dims=1)


def _window_sum(values: tf.Tensor, window: int) -> tf.Tensor:
  """Running sums over axis 1: of everything so far, or of the last
  `window` positions."""
  total = tf.cumsum(values, axis=1)
  if not window:
    return total
  earlier = tf.pad(total[:, :-window], [[0, 0], [window, 0], [0, 0]])
  return total - earlier


class BagOfWordsEncoder(ContextEncoder):
  """Mean of the context so far (or of its `window` most recent items):
  order-insensitive, a causal running mean."""

  def __init__(self, window: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.window = window

  def call(self, sequence, mask, training=None):
    weights = tf.cast(mask, sequence.dtype)[..., tf.newaxis]
    total = _window_sum(sequence * weights, self.window)
    return total / tf.maximum(_window_sum(weights, self.window), 1.0)

  def newest(self, sequence, mask):
    """The mean of the newest position's items alone: no running sums."""
    if self.window:
      index = tf.range(tf.shape(mask)[1])[tf.newaxis]
      newest = newest_position(mask)[:, tf.newaxis]
      mask = tf.logical_and(mask, index > newest - self.window)
    return masked_mean(sequence, mask)


class CNNEncoder(ContextEncoder):
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


class RNNEncoder(ContextEncoder):
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


class SelfAttentionEncoder(ContextEncoder):
  """Causal Transformer blocks with learned positions (as SASRec).

  Pre-layer-norm blocks: x += attention(norm(x)); x += feed_forward(norm(x)).
  A position attends to itself and earlier real items only, with `window`
  to its `window` most recent ones.
  """

  def __init__(self, max_length: int, units: int = 64, layers: int = 2,
               heads: int = 1, dropout: float = 0.2, window: int = 0,
               **kwargs):
    super().__init__(**kwargs)
    self.window = window
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

  def _embed(self, sequence, mask, training):
    length = tf.shape(sequence)[1]
    x = self.project(sequence) + self.positions(tf.range(length))[tf.newaxis]
    return _zero_padding(self.dropout(x, training=training), mask)

  def _block(self, index, x, attend, training, position=None):
    """One block over x; with `position` only that row per sequence is
    computed (its keys and values are still every position of x)."""
    norm1, norm2 = self.norms[index]
    h = norm1(x)
    query, residual = h, x
    if position is not None:
      query = tf.gather(h, position, batch_dims=1)[:, tf.newaxis]
      residual = tf.gather(x, position, batch_dims=1)[:, tf.newaxis]
    x = residual + self.dropout(self.attention[index](
        query, h, attention_mask=attend, training=training), training=training)
    return x + self.dropout(self.feed_forward[index](norm2(x)),
                            training=training)

  def call(self, sequence, mask, training=None):
    x = self._embed(sequence, mask, training)
    attend = causal_attention_mask(mask, self.window)
    for index in range(len(self.attention)):
      x = _zero_padding(self._block(index, x, attend, training), mask)
    return self.final_norm(x)

  def newest(self, sequence, mask):
    """The last block only at the newest item, which sees every real item
    (in its window): half the work of `call` for two blocks (serving
    latency)."""
    x = self._embed(sequence, mask, training=False)
    attend = causal_attention_mask(mask, self.window)
    last = len(self.attention) - 1
    for index in range(last):
      x = _zero_padding(self._block(index, x, attend, training=False), mask)
    newest = newest_position(mask)
    keys = mask  # the newest item's row of `attend`: every real item so far
    if self.window:
      index = tf.range(tf.shape(mask)[1])[tf.newaxis]
      keys = tf.logical_and(keys, index > (newest - self.window)[:, tf.newaxis])
    x = self._block(last, x, keys[:, tf.newaxis, :], training=False,
                    position=newest)
    return self.final_norm(x)[:, 0]


def build_context_encoder(name: str, context_length: int,
                          model_config: ModelConfig) -> keras.layers.Layer:
  """The encoder `name` with its settings from the model config."""
  c = model_config
  builders = {
      "bow": lambda: BagOfWordsEncoder(c.context_window),
      "cnn": lambda: CNNEncoder(c.cnn_filters, c.cnn_kernel_size,
                                c.cnn_layers, c.cnn_dilated, c.dropout),
      "lstm": lambda: RNNEncoder("lstm", c.rnn_units, c.rnn_layers,
                                 c.dropout),
      "gru": lambda: RNNEncoder("gru", c.rnn_units, c.rnn_layers, c.dropout),
      "attention": lambda: SelfAttentionEncoder(
          context_length, c.attention_units, c.attention_layers,
          c.attention_heads, c.dropout, c.context_window),
  }
  if name not in builders:
    raise ValueError(f"unknown context encoder {name!r}; known: "
                     f"{', '.join(sorted(builders))}")
  return builders[name]()
