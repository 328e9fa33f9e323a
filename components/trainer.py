"""Trainer module: `run_fn` trains the dual encoder and exports it.

Hyperparameters and the feature config come from the run's config (Trainer
custom_config), so run_config.json describes the model exactly. Training
stops at `train.epochs`, when the eval split's NDCG@10 (history excluded) has
not improved for `train.patience` epochs, or when `train.max_minutes` is
spent, and keeps the best epoch's weights. The Model artifact holds the
SavedModel (Format-Serving, evaluated by TFMA), its TFLite conversion
(Format-TFLite/model.tflite, pushed to devices) and training_summary.json;
TensorBoard logs go to the model run directory: the epoch losses and metrics of
both splits, and the train loss every TENSORBOARD_EVERY batches.
"""
import json
import os
import time
from typing import Any, Dict, List, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import feature_config as fc
from components import features as F
from components import serving
from components import tflite
from components.model.dual_encoder import DualEncoder

TFLITE_DIR = "Format-TFLite"
TFLITE_FILE = "model.tflite"
SUMMARY_FILE = "training_summary.json"
MONITOR = "val_ndcg_at_10"
TENSORBOARD_EVERY = 20  # batches between train-loss summaries
# Examples read per parse call.
_READ_BATCH = 1024


def make_dataset(file_pattern, data_accessor, tft_output: tft.TFTransformOutput,
                 config: fc.FeatureConfig, batch_size: int,
                 with_history: bool = False, shuffle: bool = False,
                 seed: int = 0) -> tf.data.Dataset:
  """(model features, label) batches, parsed once and held in memory.

  With `with_history` the features include the dense history (PAD-padded),
  which validation excludes from the ranking. With `shuffle` the examples
  are put in their canonical order first (see `canonical_order`), so that the
  seeded shuffle, and with it the trained model, does not depend on the order
  in which Beam wrote the examples (runner, workers, bundles).
  """
  names = serving.model_feature_names(config)
  dataset = data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, num_epochs=1,
                                     shuffle=False),
      tft_output.transformed_metadata.schema)

  def split(batch):
    features = {k: batch[k] for k in names}
    if with_history:
      features[F.HISTORY_ITEM_ID] = tf.sparse.to_dense(batch[F.HISTORY_ITEM_ID])
    return features, batch[F.LABEL_ITEM_ID]

  dataset = dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE)
  if with_history:  # histories differ in length: keep the read batches
    return dataset.unbatch().padded_batch(batch_size).cache().prefetch(
        tf.data.AUTOTUNE)
  features, labels = _to_numpy(dataset)
  order = canonical_order(features, labels)
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


def _to_numpy(dataset: tf.data.Dataset
              ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """A dataset of (features, label) batches as whole arrays."""
  features: Dict[str, List[np.ndarray]] = {}
  labels: List[np.ndarray] = []
  for batch_features, batch_labels in dataset.as_numpy_iterator():
    for name, values in batch_features.items():
      features.setdefault(name, []).append(values)
    labels.append(batch_labels)
  if not labels:
    raise ValueError("the train split has no examples")
  return ({k: np.concatenate(v) for k, v in features.items()},
          np.concatenate(labels))


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


def build_model(custom_config: Dict[str, Any],
                tft_output: tft.TFTransformOutput) -> DualEncoder:
  config = fc.parse(custom_config["features"])
  model_config, train_config = custom_config["model"], custom_config["train"]
  item_counts = None
  if train_config["loss"] == "sampled_softmax":
    item_counts = serving.read_item_counts(tft_output, config)
  model = DualEncoder(
      config, vocabulary_sizes(tft_output, config),
      custom_config["session"]["max_context_length"], model_config,
      item_counts=item_counts, loss=train_config["loss"],
      num_negatives=train_config["num_negatives"])
  model.compile(optimizer=keras.optimizers.Adam(train_config["learning_rate"]))
  return model


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
  """Remembers the weights of the best epoch by `monitor`; restores them at
  the end however training stopped (epochs, patience or time)."""

  def __init__(self, monitor: str, patience: int):
    super().__init__()
    self.monitor, self.patience = monitor, patience
    self.best, self.best_epoch, self.best_weights = -1.0, -1, None

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      return
    if value > self.best:
      self.best, self.best_epoch = value, epoch
      self.best_weights = self.model.get_weights()
    elif epoch - self.best_epoch >= self.patience:
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    if self.best_weights is not None:
      self.model.set_weights(self.best_weights)


def count_targets(dataset: tf.data.Dataset) -> int:
  """Predictions per epoch: the real items of every context (see
  next_item_targets: each real position has exactly one target)."""
  return int(dataset.reduce(tf.constant(0, tf.int64), lambda total, batch: (
      total + tf.reduce_sum(tf.cast(
          batch[0][F.CONTEXT_ITEM_ID] != F.PAD_ID, tf.int64)))).numpy())


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  custom_config = fn_args.custom_config
  train_config = custom_config["train"]
  keras.utils.set_random_seed(train_config["seed"])
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  config = fc.parse(custom_config["features"])

  train = make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output,
                       config, train_config["batch_size"], shuffle=True,
                       seed=train_config["seed"])
  evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor,
                            tft_output, config, 256, with_history=True)
  model = build_model(custom_config, tft_output)
  keep_best = KeepBest(MONITOR, train_config["patience"])
  started = time.monotonic()
  history = model.fit(
      train, validation_data=evaluation, epochs=train_config["epochs"],
      verbose=2, callbacks=[
          keep_best, TimeBudget(train_config["max_minutes"]),
          # Batch summaries are written from the batch hooks, which Keras
          # calls only with write_steps_per_second.
          keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                      update_freq=TENSORBOARD_EVERY,
                                      write_steps_per_second=True)])
  seconds = time.monotonic() - started
  epochs = len(history.history["loss"])
  targets = count_targets(train) * epochs
  summary = {
      "seconds": seconds, "epochs": epochs, "best_epoch": keep_best.best_epoch + 1,
      f"best_{MONITOR}": keep_best.best, "train_predictions": targets,
      "train_predictions_per_second": targets / seconds,
      "history": history.history,
  }
  logging.info("Training summary: %s", json.dumps(summary))

  export = serving.RecommenderExport(
      model, tft_output, config,
      context_length=custom_config["session"]["max_context_length"],
      top_k=custom_config["serving"]["top_k"])
  serving.save(export, fn_args.serving_model_dir)
  model_dir = os.path.dirname(fn_args.serving_model_dir)
  tf.io.gfile.makedirs(os.path.join(model_dir, TFLITE_DIR))
  with tf.io.gfile.GFile(os.path.join(model_dir, TFLITE_DIR, TFLITE_FILE),
                         "wb") as f:
    f.write(tflite.convert(fn_args.serving_model_dir))
  with tf.io.gfile.GFile(os.path.join(model_dir, SUMMARY_FILE), "w") as f:
    f.write(json.dumps(summary, indent=2))
