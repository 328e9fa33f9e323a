"""The rating model of the ranking stage: a user's rating of an item.

A (user, item) pair is described by the item (its id embedding and bias, and
the attributes the feature config embeds for context items: year, genres,
...), the user's static features, and the user's rated history pooled
(RatedHistoryPooling): what they watched, what they liked and disliked, how
they rate on average and how much. Dense layers map these to a correction of
the train mean rating plus the item's bias; the loss is the squared error.

Training is causal like the retrieval model's: a train window (a context and
its label) holds one rating per item, and each of its own items
(F.OWN_ITEMS_FROM) is predicted from the window's items before it, so every
train rating is a target once. Evaluation rates
the label after its whole context, and serving rates candidates after the
whole history, which is the same computation.
"""
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib.settings import RatingModelConfig
from components.model.causal_model import CausalModel, own_positions
from components.model.context_encoders import masked_mean
from components.model.feature_embeddings import static_group_embeddings


class ItemTower(keras.layers.Layer):
  """item ids [...] -> (vector [..., dim], bias [...]).

  The vector joins the id embedding and the item's attributes, looked up in a
  constant table (item id -> attribute ids, from the train data) so that a
  candidate needs only its id; multi-value attributes (genre slots) are
  masked means.
  """

  def __init__(self, num_items: int, embedding_dim: int,
               attributes: Sequence[fc.Feature], table: np.ndarray,
               vocabulary_sizes: Dict[str, int], **kwargs):
    super().__init__(**kwargs)
    self.attributes = list(attributes)
    if table.shape != (num_items, sum(f.length for f in self.attributes)):
      raise ValueError(f"attribute table of shape {table.shape} does not fit "
                       f"{num_items} items and {self.attributes}")
    self._initial_table = table.astype(np.int32)
    self.id_embedding = keras.layers.Embedding(num_items, embedding_dim,
                                               name="item_id_embedding")
    self.bias = keras.layers.Embedding(
        num_items, 1, embeddings_initializer="zeros", name="item_bias")
    self.attribute_embeddings = [
        keras.layers.Embedding(f.index_count(vocabulary_sizes),
                               f.embedding_dim, name=f"{f.name}_embedding")
        for f in self.attributes]

  def build(self, input_shape):
    self.table = self.add_weight(
        name="attribute_table", shape=self._initial_table.shape,
        dtype=tf.int32, trainable=False,
        initializer=keras.initializers.Constant(self._initial_table))
    super().build(input_shape)

  def call(self, item_ids):
    item_ids = tf.cast(item_ids, tf.int32)
    parts = [self.id_embedding(item_ids)]
    rows = tf.gather(self.table, item_ids)
    start = 0
    for feature, embedding in zip(self.attributes, self.attribute_embeddings):
      ids = rows[..., start:start + feature.length]
      start += feature.length
      parts.append(masked_mean(embedding(ids), tf.not_equal(ids, F.PAD_ID),
                               axis=-2))
    return tf.concat(parts, axis=-1), self.bias(item_ids)[..., 0]


class RatedHistoryPooling(keras.layers.Layer):
  """(item vectors [b, n, d], centred ratings [b, n], mask [b, n]) -> pooled.

  Pooled = [mean item vector, mean of item vectors times centred rating,
  mean centred rating, log(1 + count)]: 2d + 2 values. With `causal` every
  position pools the positions before it ([b, n, 2d+2]), else the whole
  history is pooled once ([b, 2d+2]).
  """

  def call(self, items, ratings, mask, causal: bool = False):
    weight = tf.cast(mask, items.dtype)[..., tf.newaxis]
    rated = ratings[..., tf.newaxis] * weight
    parts = tf.concat([items * weight, items * rated, rated], axis=-1)
    if causal:
      sums = tf.cumsum(parts, axis=1, exclusive=True)
      counts = tf.cumsum(weight, axis=1, exclusive=True)
    else:
      sums = tf.reduce_sum(parts, axis=1)
      counts = tf.reduce_sum(weight, axis=1)
    return tf.concat([sums / tf.maximum(counts, 1.0), tf.math.log1p(counts)],
                     axis=-1)


def window_positions(features: Dict[str, tf.Tensor], labels: tf.Tensor,
                    label_ratings: tf.Tensor):
  """A train window as positions: (items [b, n+1], ratings [b, n+1]), the
  label after the context's padding (padding is masked, so the label's
  history is the whole context)."""
  items = tf.concat([tf.cast(features[F.CONTEXT_ITEM_ID], tf.int64),
                     tf.cast(labels, tf.int64)[:, tf.newaxis]], axis=1)
  ratings = tf.concat([features[F.CONTEXT_RATING_VALUE],
                       tf.cast(label_ratings, tf.float32)[:, tf.newaxis]],
                      axis=1)
  return items, ratings


def input_names(config: fc.FeatureConfig) -> List[str]:
  """The transformed features the rating model reads."""
  return [F.CONTEXT_ITEM_ID, F.CONTEXT_RATING_VALUE, F.LABEL_ITEM_ID] + [
      f.name for f in config.static_features()]


class RatingModel(CausalModel):
  """Rates items for a user from transformed features.

  Features: the context items and their raw ratings (F.CONTEXT_RATING_VALUE),
  the static groups of the feature config; `label_item_id` is the item to
  rate; training data's label is `label_rating`.
  """

  def __init__(self, feature_config: fc.FeatureConfig,
               vocabulary_sizes: Dict[str, int],
               attributes: Sequence[fc.Feature], attribute_table: np.ndarray,
               rating_mean: float, model_config: RatingModelConfig, **kwargs):
    super().__init__(**kwargs)
    self.feature_config = feature_config
    self.rating_mean = float(rating_mean)
    dim = model_config.embedding_dim
    num_items = vocabulary_sizes[feature_config.label.vocabulary]
    self.item_tower = ItemTower(num_items, dim, attributes, attribute_table,
                                vocabulary_sizes, name="item_tower")
    self.history_embedding = keras.layers.Embedding(
        num_items, dim, name="history_item_embedding")
    self.pooling = RatedHistoryPooling(name="history_pooling")
    self.static_embeddings = static_group_embeddings(feature_config,
                                                     vocabulary_sizes)
    self.hidden = []
    for i, units in enumerate(model_config.hidden_units):
      self.hidden += [keras.layers.Dense(units, activation="relu",
                                         name=f"hidden_{i}"),
                      keras.layers.Dropout(model_config.dropout)]
    self.output_layer = keras.layers.Dense(1, name="rating_correction")
    self.rmse = keras.metrics.RootMeanSquaredError(name="rmse")
    self.mae = keras.metrics.MeanAbsoluteError(name="mae")
    self.evaluation_metrics = [self.rmse, self.mae]

  def _user(self, features) -> List[tf.Tensor]:
    return [layer(features) for layer in self.static_embeddings]

  def _rate(self, pooled, users: List[tf.Tensor], items, training=None):
    """pooled [b, n, h], items [b, n] -> ratings [b, n]."""
    vectors, bias = self.item_tower(items)
    dim = self.history_embedding.output_dim
    n = tf.shape(items)[1]
    tiled = [tf.tile(u[:, tf.newaxis], [1, n, 1]) for u in users]
    x = tf.concat([vectors, pooled,
                   vectors[..., :dim] * pooled[..., :dim],
                   vectors[..., :dim] * pooled[..., dim:2 * dim]] + tiled,
                  axis=-1)
    for layer in self.hidden:
      x = layer(x, training=training)
    return self.rating_mean + bias + self.output_layer(x)[..., 0]

  def _pooled_history(self, items, ratings, causal: bool):
    mask = tf.not_equal(items, F.PAD_ID)
    return self.pooling(self.history_embedding(items),
                        ratings - self.rating_mean, mask, causal=causal)

  def rate(self, features, candidates, training=None) -> tf.Tensor:
    """Ratings [b, n] of candidate item ids [b, n] after the whole context."""
    pooled = self._pooled_history(features[F.CONTEXT_ITEM_ID],
                                  features[F.CONTEXT_RATING_VALUE],
                                  causal=False)
    n = tf.shape(candidates)[1]
    return self._rate(tf.tile(pooled[:, tf.newaxis], [1, n, 1]),
                      self._user(features), candidates, training=training)

  def call(self, features, training=None):
    """[b]: the rating of the label item."""
    return self.rate(features, features[F.LABEL_ITEM_ID][:, tf.newaxis],
                     training=training)[:, 0]

  def training_loss(self, data):
    features, label_ratings = data
    items, ratings = window_positions(features, features[F.LABEL_ITEM_ID],
                                     label_ratings)
    # The label, after the context, is always one of the window's own.
    own = tf.concat([own_positions(features, features[F.CONTEXT_ITEM_ID]),
                     tf.ones_like(items[:, :1], tf.bool)], axis=1)
    valid = tf.logical_and(tf.not_equal(items, F.PAD_ID), own)
    pooled = self._pooled_history(items, ratings, causal=True)
    predicted = self._rate(pooled, self._user(features), items, training=True)
    return tf.reduce_mean(tf.square(tf.boolean_mask(predicted - ratings,
                                                    valid)))

  def test_step(self, data):
    """The label's rating after the whole context (as evaluation does)."""
    features, label_ratings = data
    predicted = self(features, training=False)
    self.loss_tracker.update_state(tf.square(predicted - label_ratings))
    self.rmse.update_state(label_ratings, predicted)
    self.mae.update_state(label_ratings, predicted)
    return self.metric_results()
