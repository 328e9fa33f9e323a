"""Embeds the transformed features of a feature group.

A sequence group gives one vector per context position: the concatenated
embeddings of its features at that position (a feature with several values
per item, like genre slots, contributes the mean of its non-padding values).
A static group gives one vector per example: the concatenation of its
features' means. Padding adds nothing anywhere: the PAD row of every
embedding is zero (`PaddedEmbedding`).
"""
from typing import Dict, List

import tensorflow as tf
import tf_keras as keras

from components.lib import feature_config as fc
from components.lib import features as F


class PaddedEmbedding(keras.layers.Embedding):
  """An embedding whose PAD row is zero, whatever is stored there.

  Padding then adds nothing to a sum, so a feature with one value per
  position is a plain lookup, with no mask to compute and multiply: on the
  device, five ops fewer per feature (at batch 1 the op count, not the
  arithmetic, sets the time). As candidates (`table()`), PAD scores 0; it is
  never a target. The zeroing is constant-folded in the TFLite file.
  """

  def table(self) -> tf.Tensor:
    keep = tf.one_hot(F.PAD_ID, self.input_dim, on_value=0.0, off_value=1.0,
                      dtype=self.embeddings.dtype)
    return self.embeddings * keep[:, tf.newaxis]

  def call(self, inputs):
    return tf.gather(self.table(), inputs)


def slot_mean(embedding: PaddedEmbedding, ids: tf.Tensor,
              slots: int) -> tf.Tensor:
  """ids [batch, n * slots] (n items of `slots` values) -> [batch, n, dim]:
  per item, the mean embedding of its non-PAD values, zeros if none."""
  if slots == 1:
    return embedding(ids)
  ids = tf.reshape(ids, [-1, ids.shape[1] // slots, slots])
  total = tf.reduce_sum(embedding(ids), axis=2)
  count = tf.reduce_sum(tf.cast(tf.not_equal(ids, F.PAD_ID), total.dtype),
                        axis=2, keepdims=True)
  return total / tf.maximum(count, 1.0)


def _padded(embeddings: Dict[str, keras.layers.Layer]) -> None:
  wrong = sorted(n for n, e in embeddings.items()
                 if not isinstance(e, PaddedEmbedding))
  if wrong:
    raise TypeError(f"{', '.join(wrong)}: the group embeddings need a zero "
                    "PAD row (PaddedEmbedding)")


class SequenceGroupEmbedding(keras.layers.Layer):
  """features -> (sequence [batch, length, dim], mask [batch, length])."""

  def __init__(self, group: fc.Group, embeddings: Dict[str, keras.layers.Layer],
               **kwargs):
    super().__init__(**kwargs)
    _padded({f.name: embeddings[f.name] for f in group.features})
    self.group = group
    self.embeddings = embeddings

  def call(self, features):
    parts = [slot_mean(self.embeddings[f.name], features[f.name], f.length)
             for f in self.group.features]
    # Item ids have one value per position (feature_config.validate).
    mask = tf.not_equal(features[F.CONTEXT_ITEM_ID], F.PAD_ID)
    return tf.concat(parts, axis=-1), mask


class StaticGroupEmbedding(keras.layers.Layer):
  """features -> [batch, dim]: per feature, the mean of its values."""

  def __init__(self, group: fc.Group, embeddings: Dict[str, keras.layers.Layer],
               **kwargs):
    super().__init__(**kwargs)
    _padded({f.name: embeddings[f.name] for f in group.features})
    self.group = group
    self.embeddings = embeddings

  def call(self, features):
    return tf.concat([
        slot_mean(self.embeddings[f.name], features[f.name], f.length)
        for f in self.group.features], axis=-1)[:, 0]


def static_group_embeddings(config: fc.FeatureConfig,
                            vocabulary_sizes: Dict[str, int]
                            ) -> List[StaticGroupEmbedding]:
  """One StaticGroupEmbedding per static group of `config`, each feature
  with its own table (the user's features, for the models beside
  retrieval)."""
  layers = []
  for group in config.groups:
    if group.kind == fc.STATIC:
      embeddings = {f.name: PaddedEmbedding(
          f.index_count(vocabulary_sizes), f.embedding_dim,
          name=f"{f.name}_embedding") for f in group.features}
      layers.append(StaticGroupEmbedding(group, embeddings,
                                         name=f"{group.name}_embedding"))
  return layers
