"""Transform module: vocabularies, id layout and fixed-length padding.

`preprocessing_fn` maps every feature the feature config names to integer ids
(components/lib/features.py describes the layout), keeping the feature's name. Vocabularies
are analyzed on the train split only and applied to every split, so an item
first seen in an eval or test target is out of vocabulary, never leaked into
training; `model.vocabulary_top_k` and `model.vocabulary_min_count` cap them
(large catalogs such as Ali-CCP's), the rest being out of vocabulary.
Sequence features are cut to their most recent `max_context_length` items
and padded at the end with PAD, so a context reads oldest -> newest; static
features are padded to their length. The label's own item
attributes (`label_year`, `label_genre`, ...) are encoded like the context's,
and rated data sets keep their raw ratings (`label_rating`,
`context_rating_value`) for the rating model.

The label's vocabulary is also written with train counts (TFT writes counts
only into a separate file): train examples partition the train interactions,
so these are the train counts the most-popular baseline ranks by, and the
frequencies a sampled softmax corrects for.
"""
import dataclasses
from typing import Any, Dict, List, Optional

import tensorflow as tf
import tensorflow_transform as tft

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib import settings


@dataclasses.dataclass(frozen=True)
class TransformSettings(settings.StepSettings):
  """What Transform reads of the run config (its custom_config)."""
  features: fc.FeatureConfig
  session: settings.SessionConfig
  model: settings.VocabularyConfig


def fixed_length(values: tf.SparseTensor, length: int) -> tf.Tensor:
  """[batch, n] ragged -> [batch, length]: keep the last `length`, pad with 0."""
  ragged = tf.RaggedTensor.from_sparse(values)
  return ragged[:, -length:].to_tensor(default_value=F.PAD_ID,
                                       shape=[None, length])


def _present(values) -> tf.Tensor:
  """The non-empty values of a string feature, flat ('' pads genre slots)."""
  flat = values.values if isinstance(values, tf.SparseTensor) else tf.reshape(
      values, [-1])
  return tf.boolean_mask(flat, tf.not_equal(flat, b""))


def own_values(values: tf.SparseTensor, own_from: tf.Tensor,
               per_item: int) -> tf.SparseTensor:
  """A sequence feature's values of the example's own items (per_item
  values each, from item `own_from` on): train windows overlap
  (F.OWN_ITEMS_FROM), and vocabulary frequencies count every train
  interaction once."""
  ragged = tf.RaggedTensor.from_sparse(values)
  index = tf.ragged.range(ragged.row_lengths())
  start = tf.cast(own_from, index.dtype)[:, tf.newaxis] * per_item
  return tf.ragged.boolean_mask(ragged, index >= start).to_sparse()


def ids(values, feature: fc.Feature, vocabularies: Dict[str, Any]):
  """Raw values (dense or sparse) -> ids in the layout; '' -> PAD."""
  def lookup(raw: tf.Tensor) -> tf.Tensor:
    if feature.buckets:
      b = feature.buckets
      return F.bucketize(raw, b.start, b.width, b.count)
    found = tft.apply_vocabulary(raw, vocabularies[feature.vocabulary],
                                 default_value=-1)
    return tf.where(tf.equal(raw, b""), tf.constant(F.PAD_ID, tf.int64),
                    F.vocabulary_ids(found))
  if isinstance(values, tf.SparseTensor):
    return tf.sparse.map_values(lookup, values)
  return lookup(values)


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Optional[Dict[str, Any]] = None
                     ) -> Dict[str, Any]:
  step = TransformSettings.parse(custom_config or {})
  config = step.features
  context_length = step.session.max_context_length
  # One TFT vocabulary per name, over every feature that uses it, counting
  # each train interaction's values once.
  own_from = inputs[F.OWN_ITEMS_FROM]
  sequence = {f.name: f.length for f in config.sequence_features()}
  sources: Dict[str, List[tf.Tensor]] = {}
  for feature in config.all_features():
    if feature.vocabulary:
      values = inputs[feature.name]
      if feature.name in sequence:
        values = own_values(values, own_from, sequence[feature.name])
      sources.setdefault(feature.vocabulary, []).append(_present(values))
  caps = {"top_k": step.model.vocabulary_top_k or None,
          "frequency_threshold": step.model.vocabulary_min_count}
  vocabularies = {
      name: tft.vocabulary(tf.concat(tensors, axis=0), vocab_filename=name,
                           **caps)
      for name, tensors in sources.items()}
  tft.vocabulary(tf.concat(sources[config.label.vocabulary], axis=0),
                 vocab_filename=config.label_counts_vocabulary,
                 store_frequency=True, **caps)

  outputs = {}
  for group in config.groups:
    for feature in group.features:
      length = feature.length * (context_length if group.kind == fc.SEQUENCE
                                 else 1)
      outputs[feature.name] = fixed_length(
          ids(inputs[feature.name], feature, vocabularies), length)
  outputs[F.LABEL_ITEM_ID] = ids(inputs[F.LABEL_ITEM_ID], config.label,
                                 vocabularies)
  # The label item's attributes, encoded as the context's (the rating model's
  # candidate features), and for rated data the raw ratings: the rating
  # model's target and the values it pools the context with.
  for feature in config.item_attributes():
    name = F.label_feature(feature.name)
    outputs[name] = fixed_length(ids(inputs[name], feature, vocabularies),
                                 feature.length)
  if F.LABEL_RATING in inputs:
    outputs[F.LABEL_RATING] = fixed_length(inputs[F.LABEL_RATING], 1)[:, 0]
    outputs[F.CONTEXT_RATING_VALUE] = fixed_length(
        inputs[F.CONTEXT_RATING], context_length)
  outputs[F.HISTORY_ITEM_ID] = ids(inputs[F.HISTORY_ITEM_ID], config.label,
                                   vocabularies)
  outputs[F.OWN_ITEMS_FROM] = own_from
  outputs[F.RANKER_LABELS_FROM] = inputs[F.RANKER_LABELS_FROM]
  return outputs
