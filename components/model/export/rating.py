"""The rating model's SavedModel and its signatures (the ranking stage).

* `serving_default` takes what an app has: the history's raw item ids ('' for
  padding) and their ratings (0: not rated, taken as the train mean), the
  user features the feature config uses, and the raw ids of the retrieval
  model's top K items ('' pads); it returns a predicted rating per
  candidate. It converts to TFLite with builtin ops only (signatures.py).
* `evaluate` takes serialized session examples, applies the TFT graph, and
  returns the predicted rating of each label beside the two baselines TFMA
  compares it with: the train mean rating, and the label item's train mean
  rating (the train mean for items without train ratings).
* `rate_candidates` rates candidate item ids (the id layout, as the retrieval
  model's `evaluate` scores them) for serialized examples: the two-stage
  evaluation re-orders the retrieval top-N with it.
* `transform_features` gives TFMA the transformed label rating.
"""
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.lib import feature_config as fc
from components.lib import features as F
from components.model.export import signatures
from components.model.rating_model import RatingModel, input_names
from components.model.export.signature_names import (CANDIDATE_ITEM_ID,
                                                     GLOBAL_MEAN_RATING,
                                                     ITEM_MEAN_RATING, RATING,
                                                     RATINGS, SERVING)


class RatingExport(signatures.ExportModule):
  """Everything the rating SavedModel serves: model, TFT graph, lookups,
  baselines."""

  def __init__(self, model: RatingModel, tft_output: tft.TFTransformOutput,
               config: fc.FeatureConfig, context_length: int,
               item_means: np.ndarray, rating_mean: float, candidates: int):
    self._statics = config.static_features()
    super().__init__(tft_output, config, [config.label.vocabulary] + sorted(
        {f.vocabulary for f in self._statics if f.vocabulary}))
    self.model = model
    self.item_means = tf.constant(item_means, tf.float32)
    self.rating_mean = tf.constant(rating_mean, tf.float32)

    self.serve = tf.function(self._serve, input_signature=[{
        F.CONTEXT_ITEM_ID: tf.TensorSpec([None, context_length], tf.string,
                                         F.CONTEXT_ITEM_ID),
        F.CONTEXT_RATING: tf.TensorSpec([None, context_length], tf.float32,
                                        F.CONTEXT_RATING),
        # A fixed width (the retrieval model's top K), so that TFLite's
        # XNNPACK delegate applies; '' pads it.
        CANDIDATE_ITEM_ID: tf.TensorSpec([None, candidates], tf.string,
                                         CANDIDATE_ITEM_ID),
        **{f.name: signatures.input_spec(f, f.length) for f in self._statics}}])
    examples = signatures.EXAMPLES
    self.evaluate = tf.function(self._evaluate, input_signature=[examples])
    self.rate_candidates = tf.function(self._rate_candidates, input_signature=[
        examples, tf.TensorSpec([None, None], tf.int64, "candidates")])
    self.transform_features = tf.function(self._transform_features,
                                          input_signature=[examples])

  def signature_functions(self):
    return {SERVING: self.serve, "evaluate": self.evaluate,
            "rate_candidates": self.rate_candidates,
            "transform_features": self.transform_features}

  def _serve(self, inputs):
    items = self.tables[self._config.label.vocabulary].lookup(
        inputs[F.CONTEXT_ITEM_ID])
    features = {
        F.CONTEXT_ITEM_ID: items,
        # A padding position's rating is padding (as Transform pads); a
        # real item without a rating (<= 0) is rated the train mean.
        F.CONTEXT_RATING_VALUE: tf.where(
            tf.equal(items, F.PAD_ID), tf.zeros_like(inputs[F.CONTEXT_RATING]),
            tf.where(inputs[F.CONTEXT_RATING] > 0, inputs[F.CONTEXT_RATING],
                     tf.fill(tf.shape(inputs[F.CONTEXT_RATING]),
                             self.rating_mean))),
        **{f.name: self.raw_ids(f, inputs[f.name])
           for f in self._statics}}
    candidates = self.tables[self._config.label.vocabulary].lookup(
        inputs[CANDIDATE_ITEM_ID])
    return {RATINGS: self.model.rate(features, candidates)}

  def _features(self, transformed):
    return {k: transformed[k] for k in input_names(self._config)}

  def _evaluate(self, examples):
    transformed = self.transform(examples)
    predicted = self.model(self._features(transformed))
    labels = tf.cast(transformed[F.LABEL_ITEM_ID], tf.int32)
    return {RATING: predicted,
            GLOBAL_MEAN_RATING: tf.fill(tf.shape(predicted), self.rating_mean),
            ITEM_MEAN_RATING: tf.gather(self.item_means, labels)}

  def _rate_candidates(self, examples, candidates):
    transformed = self.transform(examples)
    return {RATINGS: self.model.rate(self._features(transformed), candidates)}

  def _transform_features(self, examples):
    transformed = self.transform(examples)
    return {**self._features(transformed),
            F.LABEL_RATING: transformed[F.LABEL_RATING]}

