"""The training loop both models share (the retrieval dual encoder and the
rating model).

Both are trained causally over train windows: one pass over a window
predicts every own item of it (`own_positions`) from the positions before
it, so a model gives the loss of a batch (`training_loss`), and this base
applies the gradient step, adds the layers' regularization losses and tracks
the loss. Each model evaluates the
eval split its own way (`test_step`, with its own `evaluation_metrics`).

AutoGraph skips the `keras` and `tensorflow` packages but not `tf_keras`, the
same Keras 2 code under a new name: left alone it transpiles all of tf_keras
on the first trace of every process (about 20 s per train/test function on
this machine). Keras 2 code never needed conversion, so it is skipped here,
where every model of the project is defined, the same way TensorFlow's own
tests add rules.
"""
from typing import Any, Dict

import tensorflow as tf
from tensorflow.python.autograph.core import config as _autograph_config  # pylint: disable=g-direct-tensorflow-import
import tf_keras as keras

from components.lib import features as F

_TF_KERAS_RULE = _autograph_config.DoNotConvert("tf_keras")
if not any(str(rule) == str(_TF_KERAS_RULE)
           for rule in _autograph_config.CONVERSION_RULES):
  _autograph_config.CONVERSION_RULES = (
      (_TF_KERAS_RULE,) + tuple(_autograph_config.CONVERSION_RULES))


def own_positions(features: Dict[str, tf.Tensor], positions: tf.Tensor,
                  offset: int = 0) -> tf.Tensor:
  """Whether the item at position t + offset of each row is one of the
  example's own items (from F.OWN_ITEMS_FROM on; every item when the
  feature is absent), shaped as `positions` [batch, length]. Overlapping
  train windows repeat older items as context: only own items are targets,
  so each counts once."""
  shape = tf.shape(positions)
  own_from = features.get(F.OWN_ITEMS_FROM)
  if own_from is None:
    return tf.ones(shape, tf.bool)
  index = tf.range(shape[1], dtype=tf.int64)[tf.newaxis] + offset
  return index >= tf.cast(own_from, tf.int64)[:, tf.newaxis]


def before_ranker_labels(features: Dict[str, tf.Tensor], positions: tf.Tensor,
                         offset: int = 0) -> tf.Tensor:
  """Whether the item at position t + offset of each row comes before the
  example's ranker labels (F.RANKER_LABELS_FROM), shaped as `positions`:
  the targets of a retrieval model that proposes the ranker's train
  candidates, which must not have trained on the ranker's labels."""
  shape = tf.shape(positions)
  index = tf.range(shape[1], dtype=tf.int64)[tf.newaxis] + offset
  return index < tf.cast(features[F.RANKER_LABELS_FROM], tf.int64)[:, tf.newaxis]


class CausalModel(keras.Model):
  """Base: subclasses implement `training_loss(data)` and `test_step`, and
  set `evaluation_metrics` (reported beside the loss)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.evaluation_metrics = []

  @property
  def metrics(self):
    return [self.loss_tracker] + list(self.evaluation_metrics)

  def training_loss(self, data) -> tf.Tensor:
    raise NotImplementedError

  def train_step(self, data):
    with tf.GradientTape() as tape:
      loss = self.training_loss(data)
      total = loss + tf.add_n(self.losses) if self.losses else loss
    self.optimizer.minimize(total, self.trainable_variables, tape=tape)
    self.loss_tracker.update_state(loss)
    return {"loss": self.loss_tracker.result()}

  def metric_results(self) -> Dict[str, Any]:
    """What test_step returns: every metric by name."""
    return {m.name: m.result() for m in self.metrics}
