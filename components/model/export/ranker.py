"""The next-item ranker's on-device export.

On the phone the ranker follows the retrieval model.tflite: the app drops
the context's own items from retrieval's top indices, takes the first N
with their scores, and passes them with the same context indices (and the
user's) that it gave retrieval. `rank` takes exactly that, int32 indices at
a static batch of one (what XNNPACK accepts), and returns one score per
candidate, padding slots at MASKED_SCORE. Its SavedModel holds this
signature alone, so that the TFLite file has no string tables.
"""
from typing import Dict

import tensorflow as tf

from components.lib import features as F
from components.model.export.signature_names import RANK, SCORES
from components.model.next_item_ranker import NextItemRanker


class RankerOnDeviceExport(tf.Module):
  """`rank` of a trained ranker for `candidates` candidates, a context of
  `context_length` items and the static inputs {name: width}."""

  def __init__(self, model: NextItemRanker, candidates: int,
               context_length: int, static_widths: Dict[str, int]):
    super().__init__()
    self.model = model
    self.rank = tf.function(self._rank, input_signature=[{
        F.CANDIDATE_ITEM_INDEX: tf.TensorSpec(
            [1, candidates], tf.int32, F.CANDIDATE_ITEM_INDEX),
        F.CANDIDATE_SCORE: tf.TensorSpec(
            [1, candidates], tf.float32, F.CANDIDATE_SCORE),
        F.CONTEXT_ITEM_ID: tf.TensorSpec(
            [1, context_length], tf.int32, F.CONTEXT_ITEM_ID),
        **{name: tf.TensorSpec([1, width], tf.int32, name)
           for name, width in static_widths.items()}}])

  def save(self, path: str) -> None:
    tf.saved_model.save(self, path, signatures={
        RANK: self.rank.get_concrete_function()})

  def _rank(self, inputs):
    return {SCORES: self.model(inputs)}
