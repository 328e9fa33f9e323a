"""Embeds the transformed features of a feature group.

A sequence group gives one vector per context position: the concatenated
embeddings of its features at that position (a feature with several values
per item, like genre slots, contributes the masked mean of its values). A
static group gives one vector per example: the concatenated masked means of
its features. PAD ids are masked everywhere.
"""
from typing import Dict

import tensorflow as tf
import tf_keras as keras

from components.lib import feature_config as fc
from components.lib import features as F
from components.model.context_encoders import masked_mean


class SequenceGroupEmbedding(keras.layers.Layer):
  """features -> (sequence [batch, length, dim], mask [batch, length])."""

  def __init__(self, group: fc.Group, embeddings: Dict[str, keras.layers.Layer],
               context_length: int, **kwargs):
    super().__init__(**kwargs)
    self.group = group
    self.embeddings = embeddings
    self.context_length = context_length

  def call(self, features):
    parts, mask = [], None
    for feature in self.group.features:
      ids = tf.reshape(features[feature.name],
                       [-1, self.context_length, feature.length])
      embedded = self.embeddings[feature.name](ids)
      parts.append(masked_mean(embedded, tf.not_equal(ids, F.PAD_ID), axis=2))
      if feature.name == F.CONTEXT_ITEM_ID:
        mask = tf.not_equal(ids[:, :, 0], F.PAD_ID)
    return tf.concat(parts, axis=-1), mask


class StaticGroupEmbedding(keras.layers.Layer):
  """features -> [batch, dim]: per feature, the masked mean of its values."""

  def __init__(self, group: fc.Group, embeddings: Dict[str, keras.layers.Layer],
               **kwargs):
    super().__init__(**kwargs)
    self.group = group
    self.embeddings = embeddings

  def call(self, features):
    return tf.concat([
        masked_mean(self.embeddings[f.name](features[f.name]),
                    tf.not_equal(features[f.name], F.PAD_ID))
        for f in self.group.features], axis=-1)
