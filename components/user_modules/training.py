"""What both Trainers' run_fn share (trainer.py: retrieval; rating_trainer.py:
the rating model): reading the Transform output into memory in a canonical
order, fitting with early stopping on the eval split, a time budget and
TensorBoard logs, and the files a Model artifact holds beside its SavedModel
(the TFLite conversion, the training summary and the settings that made it).
"""
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx_bsl.public import tfxio

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib import layout
from components.lib import settings
from components.model.export.input_mapping import InputMapping

TENSORBOARD_EVERY = 20  # batches between train-loss summaries
# Examples read per parse call.
_READ_BATCH = 1024


def read_transformed(file_pattern, data_accessor,
                     tft_output: tft.TFTransformOutput, names: Sequence[str]
                     ) -> tf.data.Dataset:
  """Batches {name: transformed feature} of the examples, in file order."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, num_epochs=1,
                                     shuffle=False),
      tft_output.transformed_metadata.schema)
  return dataset.map(lambda batch: {k: batch[k] for k in names},
                     num_parallel_calls=tf.data.AUTOTUNE)


def to_numpy(dataset: tf.data.Dataset) -> Dict[str, np.ndarray]:
  """A dataset of {name: batch} as whole arrays."""
  arrays: Dict[str, List[np.ndarray]] = {}
  for batch in dataset.as_numpy_iterator():
    for name, values in batch.items():
      arrays.setdefault(name, []).append(values)
  if not arrays:
    raise ValueError("the train split has no examples")
  return {k: np.concatenate(v) for k, v in arrays.items()}


def in_memory_dataset(features: Dict[str, np.ndarray], labels: np.ndarray,
                      order_key: np.ndarray, batch_size: int,
                      shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
  """(features, labels) batches from arrays held in memory.

  The examples are put in their canonical order first (see
  `canonical_order`, keyed by `order_key`, integer ids per example), so
  that the seeded shuffle, and with it the trained model, does not depend on
  the order in which Beam wrote the examples (runner, workers, bundles).
  """
  order = canonical_order(features, order_key)
  features = {k: tf.constant(v[order]) for k, v in features.items()}
  labels = tf.constant(labels[order])
  indices = tf.data.Dataset.range(len(order))
  if shuffle:
    indices = indices.shuffle(len(order), seed=seed,
                              reshuffle_each_iteration=True)
  return indices.batch(batch_size).map(
      lambda i: ({k: tf.gather(v, i) for k, v in features.items()},
                 tf.gather(labels, i)),
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def canonical_order(features: Dict[str, np.ndarray],
                    labels: np.ndarray) -> np.ndarray:
  """A permutation of the examples that depends on their contents only.

  Examples are ordered by a hash of all their ids (so the order is well
  mixed, not sorted by item), ties broken by the ids themselves: the same
  examples in any order give the same sequence, and identical examples are
  interchangeable.
  """
  count = len(labels)
  columns = np.concatenate(
      [labels.reshape(count, -1).astype(np.int64)] +
      [features[k].reshape(count, -1).astype(np.int64)
       for k in sorted(features)], axis=1)
  multipliers = np.random.default_rng(0).integers(
      1, 2**62, size=columns.shape[1], dtype=np.int64) | 1
  with np.errstate(over="ignore"):
    hashed = (columns * multipliers).sum(axis=1)  # wraps around: a hash
  return np.lexsort(tuple(columns.T[::-1]) + (hashed,))


def vocabulary_sizes(tft_output: tft.TFTransformOutput,
                     config: fc.FeatureConfig) -> Dict[str, int]:
  return {name: tft_output.vocabulary_size_by_name(name) + F.NUM_RESERVED_IDS
          for name in config.vocabularies()}


class TimeBudget(keras.callbacks.Callback):
  """Stops training after the epoch that used up `minutes`."""

  def __init__(self, minutes: float):
    super().__init__()
    self.seconds = minutes * 60.0
    self.started = 0.0

  def on_train_begin(self, logs=None):
    self.started = time.monotonic()

  def on_epoch_end(self, epoch, logs=None):
    if time.monotonic() - self.started >= self.seconds:
      logging.info("Time budget of %.0f s used after epoch %d.", self.seconds,
                   epoch + 1)
      self.model.stop_training = True


class KeepBest(keras.callbacks.Callback):
  """Remembers the weights of the best epoch by `monitor` (higher is better,
  or lower with `lower_is_better`); restores them at the end however
  training stopped (epochs, patience or time)."""

  def __init__(self, monitor: str, patience: int,
               lower_is_better: bool = False):
    super().__init__()
    self.monitor, self.patience = monitor, patience
    self.sign = -1.0 if lower_is_better else 1.0
    self.best, self.best_epoch, self.best_weights = None, -1, None

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      return
    if self.best is None or self.sign * value > self.sign * self.best:
      self.best, self.best_epoch = value, epoch
      self.best_weights = self.model.get_weights()
    elif epoch - self.best_epoch >= self.patience:
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    if self.best_weights is not None:
      self.model.set_weights(self.best_weights)


def decaying(learning_rate: float, decay: float) -> keras.callbacks.Callback:
  """Sets Adam's learning rate to learning_rate * decay ** epoch before each
  epoch: an exponential decay that is the same whatever the data size or
  the time an epoch takes, so a seeded run repeats."""
  return keras.callbacks.LearningRateScheduler(
      lambda epoch, _: learning_rate * decay ** epoch)


def fit(model: keras.Model, train: tf.data.Dataset,
        evaluation: tf.data.Dataset, epochs: int, patience: int,
        max_minutes: float, monitor: str, log_dir: str,
        lower_is_better: bool = False,
        schedule: Sequence[keras.callbacks.Callback] = ()
        ) -> Tuple[Dict[str, Any], KeepBest, float]:
  """Fits with early stopping on `monitor`, the time budget, TensorBoard
  logs and the `schedule` callbacks (the learning rate's); returns
  (history, the KeepBest callback, seconds)."""
  keep_best = KeepBest(monitor, patience, lower_is_better)
  started = time.monotonic()
  history = model.fit(
      train, validation_data=evaluation, epochs=epochs, verbose=2,
      callbacks=[
          keep_best, TimeBudget(max_minutes), *schedule,
          # Batch summaries are written from the batch hooks, which Keras
          # calls only with write_steps_per_second.
          keras.callbacks.TensorBoard(log_dir=log_dir,
                                      update_freq=TENSORBOARD_EVERY,
                                      write_steps_per_second=True)])
  # Plain floats (Keras logs the learning rate as a numpy float): the
  # history goes into training_summary.json.
  plain = {name: [float(v) for v in values]
           for name, values in history.history.items()}
  return plain, keep_best, time.monotonic() - started


def tflite_dir(serving_model_dir: str) -> str:
  """The Model artifact's Format-TFLite directory (created)."""
  path = os.path.join(os.path.dirname(serving_model_dir), layout.TFLITE_DIR)
  tf.io.gfile.makedirs(path)
  return path


def write_model_files(serving_model_dir: str, summary: Dict[str, Any],
                      step: settings.StepSettings, tflite_model: bytes,
                      input_mapping: Optional[InputMapping] = None) -> None:
  """Beside the saved SavedModel: its TFLite conversion (with the input
  mapping of an index-input model), the training summary, and the settings
  the Trainer received (the pushed bundle records them)."""
  model_dir = os.path.dirname(serving_model_dir)
  with tf.io.gfile.GFile(os.path.join(tflite_dir(serving_model_dir),
                                      layout.TFLITE_MODEL), "wb") as f:
    f.write(tflite_model)
  files = [(layout.TRAINING_SUMMARY, summary),
           (layout.MODEL_SETTINGS, step.to_dict())]
  if input_mapping is not None:
    files.append((os.path.join(layout.TFLITE_DIR, layout.INPUT_MAPPING),
                  input_mapping.to_dict()))
  for name, content in files:
    with tf.io.gfile.GFile(os.path.join(model_dir, name), "w") as f:
      f.write(json.dumps(content, indent=2, sort_keys=True))
