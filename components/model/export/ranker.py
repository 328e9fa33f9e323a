"""The next-item ranker's exports: the chain for evaluation, and the
ranker alone for the phone.

The chain (`ChainExport`, the Model artifact's SavedModel) serves TFMA the
retrieval model's `evaluate` and `transform_features` signatures with the
ranker in between: retrieval scores the catalog (history excluded), its top
N are re-ordered by the ranker and lifted above every other item, and
everything else keeps its retrieval score. So a target among the N ranks
where the ranker puts it (ties against it), and a target outside them keeps
its retrieval rank, which is N or more: ../shared/PROTOCOL.md's ranks of the
two stages, and TFMA compares them with retrieval alone on every slice.

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
import tensorflow_transform as tft

from components.lib import feature_config as fc
from components.lib import features as F
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export import signatures
from components.model.export.signature_names import (POPULARITY_SCORES, RANK,
                                                     SCORES)
from components.model.next_item_ranker import NextItemRanker


def chain_scores(retrieval_scores: tf.Tensor, candidates: tf.Tensor,
                 ranked: tf.Tensor) -> tf.Tensor:
  """Catalog scores [b, items] of the two stages: the candidates (indices
  [b, n], PAD where none) get their ranker scores [b, n] lifted above the
  best retrieval score, in the ranker's order; every other item keeps its
  retrieval score."""
  valid = candidates >= F.NUM_RESERVED_IDS
  lowest = tf.reduce_min(tf.where(valid, ranked, tf.reduce_max(ranked)),
                         axis=1, keepdims=True)
  best = tf.reduce_max(retrieval_scores, axis=1, keepdims=True)
  lifted = best + 1.0 + (ranked - lowest)
  where = tf.where(valid)  # [k, 2] (row, slot)
  items = tf.gather_nd(tf.cast(candidates, tf.int64), where)
  return tf.tensor_scatter_nd_update(
      retrieval_scores, tf.stack([where[:, 0], items], axis=1),
      tf.gather_nd(lifted, where))


class ChainExport(signatures.ExportModule):
  """`evaluate` and `transform_features` of retrieval followed by the
  ranker of its top `candidates` (see the module's docstring); `retrieval`
  is the loaded retrieval SavedModel."""

  def __init__(self, model: NextItemRanker, retrieval,
               tft_output: tft.TFTransformOutput, config: fc.FeatureConfig,
               candidates: int):
    super().__init__(tft_output, config, [])
    self.model = model
    self.retrieval = retrieval
    self.candidates = candidates
    self._inputs = [F.CONTEXT_ITEM_ID] + [f.name for f in
                                          config.static_features()]
    examples = [signatures.EXAMPLES]
    self.evaluate = tf.function(self._evaluate, input_signature=examples)
    self.transform_features = tf.function(self._transform_features,
                                          input_signature=examples)

  def signature_functions(self):
    return {"evaluate": self.evaluate,
            "transform_features": self.transform_features}

  def _evaluate(self, examples):
    retrieved = self.retrieval.signatures["evaluate"](examples=examples)
    scores = retrieved[SCORES]
    top = tf.math.top_k(scores, k=min(self.candidates, int(scores.shape[1])))
    # Excluded items (the history, PAD, OOV) are no candidates.
    candidates = tf.where(top.values > EXCLUDED_SCORE, top.indices,
                          tf.zeros_like(top.indices) + F.PAD_ID)
    transformed = self.transform(examples)
    inputs = {name: transformed[name] for name in self._inputs}
    inputs[F.CANDIDATE_ITEM_INDEX] = candidates
    inputs[F.CANDIDATE_SCORE] = top.values
    return {SCORES: chain_scores(scores, candidates, self.model(inputs)),
            POPULARITY_SCORES: retrieved[POPULARITY_SCORES]}

  def _transform_features(self, examples):
    return self.retrieval.signatures["transform_features"](examples=examples)


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
