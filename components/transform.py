"""Transform module: vocabularies, id layout and fixed-length padding.

`preprocessing_fn` runs in TFX's Transform with the vocabularies analyzed on
the train split only and applied to every split, so that an item first seen in
an eval or test target is out of vocabulary (never leaked into training). The
id layout (0 = PAD, 1 = OOV, 2.. = vocabulary) is described in features.py.
Context lists are cut to their most recent `max_context_length` entries and
padded at the end with PAD, so that a context reads oldest -> newest.
"""
from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft

from components import features as F

# A second copy of the item vocabulary with train counts (TFT writes counts
# only into a separate file): the popularity baseline is read from it.
ITEM_COUNTS_VOCAB = F.ITEM_VOCAB + "_counts"


def fixed_length(values: tf.SparseTensor, length: int) -> tf.Tensor:
  """[batch, n] ragged -> [batch, length]: keep the last `length`, pad with 0."""
  ragged = tf.RaggedTensor.from_sparse(values)
  return ragged[:, -length:].to_tensor(default_value=0, shape=[None, length])


def _lookup(values, vocab) -> Any:
  ids = tft.apply_vocabulary(values, vocab, default_value=-1)
  if isinstance(ids, tf.SparseTensor):
    return tf.sparse.map_values(F.vocabulary_ids, ids)
  return F.vocabulary_ids(ids)


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Optional[Dict[str, Any]] = None
                     ) -> Dict[str, Any]:
  session = (custom_config or {}).get("session", {})
  context_length = int(session.get("max_context_length", 10))
  genre_length = int(session.get("max_context_genres", 32))

  labels = inputs[F.LABEL_ITEM_ID]
  item_vocab = tft.vocabulary(labels, vocab_filename=F.ITEM_VOCAB)
  tft.vocabulary(labels, vocab_filename=ITEM_COUNTS_VOCAB, store_frequency=True)
  genre_vocab = tft.vocabulary(inputs[F.CONTEXT_GENRE],
                               vocab_filename=F.GENRE_VOCAB)

  return {
      F.LABEL_ITEM: _lookup(labels, item_vocab),
      F.CONTEXT_ITEM: fixed_length(
          _lookup(inputs[F.CONTEXT_ITEM_ID], item_vocab), context_length),
      F.CONTEXT_RATING_BUCKET: fixed_length(
          tf.sparse.map_values(F.rating_buckets, inputs[F.CONTEXT_RATING]),
          context_length),
      F.CONTEXT_YEAR_BUCKET: fixed_length(
          tf.sparse.map_values(F.year_buckets, inputs[F.CONTEXT_YEAR]),
          context_length),
      F.CONTEXT_GENRE_ID: fixed_length(
          _lookup(inputs[F.CONTEXT_GENRE], genre_vocab), genre_length),
      F.HISTORY_ITEM: _lookup(inputs[F.HISTORY_ITEM_ID], item_vocab),
  }
