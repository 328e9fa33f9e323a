"""The rating model's SavedModel and its signatures (the ranking stage).

* `serving_default` takes what an app has: the history's raw item ids ('' for
  padding) and their ratings (0: not rated, taken as the train mean), the
  user features the feature config uses, and the raw ids of the retrieval
  model's top K items ('' pads); it returns a predicted rating per candidate. Lookups are constant string tables and
  bucket arithmetic, so it converts to TFLite with builtin ops only.
* `evaluate` takes serialized session examples, applies the TFT graph, and
  returns the predicted rating of each label beside the two baselines TFMA
  compares it with: the train mean rating, and the label item's train mean
  rating (the train mean for items without train ratings).
* `rate_candidates` rates candidate item ids (the id layout, as the retrieval
  model's `evaluate` scores them) for serialized examples: the two-stage
  evaluation re-orders the retrieval top-N with it.
* `transform_features` gives TFMA the transformed label rating.
"""
from typing import Dict

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import feature_config as fc
from components import features as F
from components import serving
from components.model.rating_model import RatingModel

CANDIDATE_ITEM_ID = "candidate_item_id"
RATINGS = "ratings"
# Outputs of `evaluate`: the model and the baselines it must beat.
RATING = "rating"
GLOBAL_MEAN_RATING = "global_mean_rating"
ITEM_MEAN_RATING = "item_mean_rating"


def model_feature_names(config: fc.FeatureConfig):
  """The transformed features the rating model reads."""
  return [F.CONTEXT_ITEM_ID, F.CONTEXT_RATING_VALUE, F.LABEL_ITEM_ID] + [
      f.name for g in config.groups if g.kind == fc.STATIC for f in g.features]


class RatingExport(tf.Module):
  """Everything the rating SavedModel serves: model, TFT graph, lookups,
  baselines."""

  def __init__(self, model: RatingModel, tft_output: tft.TFTransformOutput,
               config: fc.FeatureConfig, context_length: int,
               item_means: np.ndarray, rating_mean: float, candidates: int):
    super().__init__()
    self.model = model
    self.tft_layer = tft_output.transform_features_layer()
    self._raw_spec = tft_output.raw_feature_spec()
    self._config = config
    self._statics = [f for g in config.groups if g.kind == fc.STATIC
                     for f in g.features]
    self.tables = serving.vocabulary_tables(
        tft_output, [config.label.vocabulary] + sorted(
            {f.vocabulary for f in self._statics if f.vocabulary}))
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
        **{f.name: serving.input_spec(f, f.length) for f in self._statics}}])
    examples = tf.TensorSpec([None], tf.string, "examples")
    self.evaluate = tf.function(self._evaluate, input_signature=[examples])
    self.rate_candidates = tf.function(self._rate_candidates, input_signature=[
        examples, tf.TensorSpec([None, None], tf.int64, "candidates")])
    self.transform_features = tf.function(self._transform_features,
                                          input_signature=[examples])

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {
        "serving_default": self.serve.get_concrete_function(),
        "evaluate": self.evaluate.get_concrete_function(),
        "rate_candidates": self.rate_candidates.get_concrete_function(),
        "transform_features": self.transform_features.get_concrete_function(),
    }

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
        **{f.name: serving.raw_ids(f, inputs[f.name], self.tables)
           for f in self._statics}}
    candidates = self.tables[self._config.label.vocabulary].lookup(
        inputs[CANDIDATE_ITEM_ID])
    return {RATINGS: self.model.rate(features, candidates)}

  def _transform(self, examples):
    return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

  def _features(self, transformed):
    return {k: transformed[k] for k in model_feature_names(self._config)}

  def _evaluate(self, examples):
    transformed = self._transform(examples)
    predicted = self.model(self._features(transformed))
    labels = tf.cast(transformed[F.LABEL_ITEM_ID], tf.int32)
    return {RATING: predicted,
            GLOBAL_MEAN_RATING: tf.fill(tf.shape(predicted), self.rating_mean),
            ITEM_MEAN_RATING: tf.gather(self.item_means, labels)}

  def _rate_candidates(self, examples, candidates):
    transformed = self._transform(examples)
    return {RATINGS: self.model.rate(self._features(transformed), candidates)}

  def _transform_features(self, examples):
    transformed = self._transform(examples)
    return {**self._features(transformed),
            F.LABEL_RATING: transformed[F.LABEL_RATING]}


def save(export: RatingExport, path: str) -> None:
  tf.saved_model.save(export, path, signatures=export.signatures())
