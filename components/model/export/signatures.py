"""What the retrieval and the rating SavedModel share: raw inputs looked up
with TFLite-friendly ops, the TFT graph for serialized examples, and saving
with named signatures.

Strings are looked up in constant string-keyed hash tables built from TFT's
vocabularies and numbers are bucketized arithmetically, as Transform maps
them, so a caller needs no vocabulary file and the serving signature
converts to TFLite with builtin ops only.
"""
from typing import Any, Dict, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from components.lib import feature_config as fc
from components.lib import features as F

_DTYPES = {"STRING": tf.string, "INT": tf.int32, "FLOAT": tf.float32}


def _table(keys: Sequence[bytes]) -> tf.lookup.StaticHashTable:
  """'' -> PAD, vocabulary entry i -> i + 2, anything else -> OOV."""
  keys = [b""] + list(keys)
  values = [F.PAD_ID] + [i + F.NUM_RESERVED_IDS for i in range(len(keys) - 1)]
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(keys, tf.string), tf.constant(values, tf.int64)),
      default_value=tf.constant(F.OOV_ID, tf.int64))


def input_spec(feature: fc.Feature, width: int) -> tf.TensorSpec:
  """A serving input: [batch, width] values of a feature, named after it."""
  return tf.TensorSpec([None, width], _DTYPES[feature.type], feature.name)


EXAMPLES = tf.TensorSpec([None], tf.string, "examples")


class ExportModule(tf.Module):
  """Base of an export: the TFT graph, the string tables of `vocabularies`,
  and `signature_functions`, the tf.functions saved as signatures."""

  def __init__(self, tft_output: tft.TFTransformOutput,
               config: fc.FeatureConfig, vocabularies: Sequence[str]):
    super().__init__()
    self.tft_layer = tft_output.transform_features_layer()
    self._raw_spec = tft_output.raw_feature_spec()
    self._config = config
    self.tables = {name: _table(tft_output.vocabulary_by_name(name))
                   for name in vocabularies}

  def signature_functions(self) -> Dict[str, Any]:
    """{signature name: tf.function with an input signature}."""
    raise NotImplementedError

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {name: function.get_concrete_function()
            for name, function in self.signature_functions().items()}

  def save(self, path: str) -> None:
    tf.saved_model.save(self, path, signatures=self.signatures())

  def raw_ids(self, feature: fc.Feature, raw: tf.Tensor) -> tf.Tensor:
    """Raw values -> ids in the layout, as Transform maps them."""
    if feature.buckets:
      b = feature.buckets
      return F.bucketize(raw, b.start, b.width, b.count)
    return self.tables[feature.vocabulary].lookup(raw)

  def transform(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Serialized session examples -> transformed features (TFT's graph)."""
    return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))
