"""The dual encoder: a context tower and a label tower scored by a dot product.

Context tower: each feature group of the feature config is embedded; the
sequence group goes through the context encoder (one causal encoding per
position), static groups are pooled and joined to every position, and a
projection maps the result to the item embedding space. Label tower: the
item embedding. Similarity: dot product, one logit per item id (PAD and OOV
included; they are never targets and are excluded from rankings).

Training is causal: every position of a context predicts the next item (the
following context item, and the label after the newest one) when that item
is one of the window's own (F.OWN_ITEMS_FROM), with a full
softmax over the catalog or a sampled one; with `exclude_seen` each
prediction's softmax leaves out the window's items up to its position, as
rankings leave out the history. With `hold_out_ranker_labels` the ranker's
train labels (F.RANKER_LABELS_FROM) are no targets: the model proposes the
ranker's train candidates. Serving and evaluation read the
position of the newest item. Validation ranks the whole catalog with the
user's history excluded, as the test metrics do.
"""
from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib.settings import ModelConfig
from components.model import losses
from components.model import catalog_ranking
from components.model.causal_model import (CausalModel, before_ranker_labels,
                                           own_positions)
from components.model.context_encoders import build_context_encoder
from components.model.feature_embeddings import (PaddedEmbedding,
                                                SequenceGroupEmbedding,
                                                StaticGroupEmbedding)
from components.model.label_encoders import ItemEmbeddingLabelEncoder
from components.model.similarity import DotProductSimilarity


def next_item_targets(context_items: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """[batch, length] targets: the next context item, the label after the
  newest, PAD after that (contexts are padded at the end)."""
  length = tf.shape(context_items)[1]
  count = tf.reduce_sum(tf.cast(context_items != F.PAD_ID, tf.int32), axis=1)
  shifted = tf.concat([context_items[:, 1:],
                       tf.fill([tf.shape(context_items)[0], 1],
                               tf.constant(F.PAD_ID, context_items.dtype))],
                      axis=1)
  newest = tf.equal(tf.range(length)[tf.newaxis], (count - 1)[:, tf.newaxis])
  return tf.where(newest, tf.cast(labels, context_items.dtype)[:, tf.newaxis],
                  shifted)


def seen_before(context_items: tf.Tensor, positions: tf.Tensor,
                num_items: int) -> Callable[[tf.Tensor], tf.Tensor]:
  """For predictions at `positions` ([n, 2] (row, position) pairs) of the
  windows `context_items` [batch, length]: a function of item ids [k] ->
  [n, k] bool, whether each item is in the row at or before the position.
  It looks up only the ids asked for (a sampled softmax's few)."""
  items = tf.cast(context_items, tf.int32)
  batch, length = tf.shape(items)[0], tf.shape(items)[1]
  index = tf.broadcast_to(tf.range(length)[tf.newaxis], [batch, length])
  row = tf.broadcast_to(tf.range(batch)[:, tf.newaxis], [batch, length])
  # [batch, num_items]: the first position of each item in each row (the
  # largest int32 where it is absent).
  first = tf.reshape(tf.math.unsorted_segment_min(
      tf.reshape(index, [-1]), tf.reshape(row * num_items + items, [-1]),
      batch * num_items), [batch, num_items])
  positions = tf.cast(positions, tf.int32)

  def seen(ids: tf.Tensor) -> tf.Tensor:
    return tf.gather(tf.gather(first, tf.cast(ids, tf.int32), axis=1),
                     positions[:, 0]) <= positions[:, 1:]
  return seen


class DualEncoder(CausalModel):
  """Next-item retrieval model over transformed features."""

  def __init__(self, feature_config: fc.FeatureConfig,
               vocabulary_sizes: Dict[str, int], context_length: int,
               model_config: ModelConfig,
               item_counts: Optional[Sequence[float]] = None,
               loss: str = "softmax", num_negatives: int = 1024,
               exclude_seen: bool = False,
               hold_out_ranker_labels: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.feature_config = feature_config
    self.context_length = context_length
    self.exclude_seen = exclude_seen
    self.hold_out_ranker_labels = hold_out_ranker_labels
    label = feature_config.label
    self.num_items = num_items = vocabulary_sizes[label.vocabulary]
    self.label_encoder = ItemEmbeddingLabelEncoder(
        num_items, label.embedding_dim, name="label_encoder")

    embeddings = {}
    for group in feature_config.groups:
      for feature in group.features:
        rows = feature.index_count(vocabulary_sizes)
        shared = (model_config.share_item_embeddings and
                  feature.vocabulary == label.vocabulary and
                  feature.embedding_dim == label.embedding_dim)
        embeddings[feature.name] = (
            self.label_encoder.embedding if shared else PaddedEmbedding(
                rows, feature.embedding_dim, name=f"{feature.name}_embedding"))
    (sequence_group,) = [g for g in feature_config.groups
                         if g.kind == fc.SEQUENCE]
    self.sequence_embedding = SequenceGroupEmbedding(
        sequence_group, embeddings, name="sequence_embedding")
    self.static_embeddings = [
        StaticGroupEmbedding(g, embeddings, name=f"{g.name}_embedding")
        for g in feature_config.groups if g.kind == fc.STATIC]
    self.context_encoder = build_context_encoder(
        sequence_group.encoder or model_config.encoder, context_length,
        model_config)
    self.projection = keras.layers.Dense(label.embedding_dim, name="projection")
    self.similarity = DotProductSimilarity(name="similarity")
    self.loss_layer = losses.build_loss(loss, item_counts, num_negatives)
    self.evaluation_metrics = [catalog_ranking.HitRate(10),
                               catalog_ranking.NDCG(10)]

  def vocabulary_tables(self) -> Dict[int, str]:
    """{index in `weights`: vocabulary name} of the embedding tables whose
    rows are vocabulary entries in Transform's order (PAD and OOV first):
    what a warm start carries over entry by entry, not row by row."""
    label = self.feature_config.label
    tables = {id(self.label_encoder.embedding.embeddings): label.vocabulary}
    features = {f.name: f for g in self.feature_config.groups
                for f in g.features}
    for layer in [self.sequence_embedding] + self.static_embeddings:
      for name, embedding in layer.embeddings.items():
        if features[name].vocabulary and not features[name].num_ids:
          tables.setdefault(id(embedding.embeddings),
                            features[name].vocabulary)
    return {index: tables[id(weight)] for index, weight in
            enumerate(self.weights) if id(weight) in tables}

  def _queries(self, encoded, features):
    """Appends the static groups' encodings, projects to the item space."""
    statics = [layer(features) for layer in self.static_embeddings]
    if statics:
      static = tf.concat(statics, axis=-1)
      if encoded.shape.rank == 3:
        static = tf.tile(static[:, tf.newaxis], [1, tf.shape(encoded)[1], 1])
      encoded = tf.concat([encoded, static], axis=-1)
    return self.projection(encoded)

  def encode_positions(self, features, training=None):
    """-> (queries [batch, length, dim], mask [batch, length])."""
    sequence, mask = self.sequence_embedding(features)
    encoded = self.context_encoder(sequence, mask, training=training)
    return self._queries(encoded, features), mask

  def encode_context(self, features) -> tf.Tensor:
    """[batch, dim]: the query at the newest context item (inference)."""
    sequence, mask = self.sequence_embedding(features)
    return self._queries(self.context_encoder.newest(sequence, mask), features)

  def call(self, features, training=None):
    """Logits over every item id for the item after the newest one."""
    del training  # inference only; training goes through encode_positions
    return self.similarity(self.encode_context(features),
                           self.label_encoder.candidates())

  def training_loss(self, data):
    features, labels = data
    queries, _ = self.encode_positions(features, training=True)
    targets = next_item_targets(features[F.CONTEXT_ITEM_ID], labels)
    # Neither padding nor an item outside a capped vocabulary (OOV) is a
    # target the model can name (and OOV has no sampling probability); an
    # item an older window owns is context only.
    valid = tf.logical_and(
        targets >= F.NUM_RESERVED_IDS,
        own_positions(features, targets, offset=1))
    if self.hold_out_ranker_labels:
      valid = tf.logical_and(
          valid, before_ranker_labels(features, targets, offset=1))
    excluded = None
    if self.exclude_seen:
      excluded = seen_before(features[F.CONTEXT_ITEM_ID], tf.where(valid),
                             self.num_items)
    return self.loss_layer(tf.boolean_mask(queries, valid),
                           tf.boolean_mask(targets, valid),
                           self.label_encoder.candidates(), excluded=excluded,
                           training=True)

  def test_step(self, data):
    """Eval split: loss on the label, ranking metrics with history excluded."""
    features, labels = data
    logits = self(features, training=False)
    known = tf.not_equal(labels, F.OOV_ID)
    self.loss_tracker.update_state(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(tf.boolean_mask(labels, known), tf.int32),
        logits=tf.boolean_mask(logits, known)))
    scores = catalog_ranking.exclude_items(logits, features[F.HISTORY_ITEM_ID])
    ranks = catalog_ranking.target_ranks(scores, labels)
    for metric in self.evaluation_metrics:
      metric.update_state(ranks)
    return self.metric_results()
