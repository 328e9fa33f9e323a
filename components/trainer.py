"""Trainer module: `run_fn` trains the dual encoder and exports it.

Hyperparameters come from the run's config (Trainer custom_config), so the
recorded run_config.json describes the model exactly. The Model artifact holds
the SavedModel (Format-Serving, evaluated by TFMA) and its TFLite conversion
(Format-TFLite/model.tflite, pushed to devices); TensorBoard logs go to the
model run directory.
"""
import json
import os
from typing import Any, Dict

from absl import logging
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import features as F
from components import serving
from components import tflite
from components.model.dual_encoder import DualEncoder

TFLITE_DIR = "Format-TFLite"
TFLITE_FILE = "model.tflite"
# Examples read per parse call; training batches are formed after shuffling.
_READ_BATCH = 4096


def make_dataset(file_pattern, data_accessor, tft_output: tft.TFTransformOutput,
                 batch_size: int, shuffle_buffer: int = 0,
                 seed: int = 0) -> tf.data.Dataset:
  """(model features, label) batches, parsed once and cached in memory."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, num_epochs=1,
                                     shuffle=False),
      tft_output.transformed_metadata.schema)
  dataset = dataset.map(
      lambda f: ({k: f[k] for k in serving.MODEL_FEATURES}, f[F.LABEL_ITEM]),
      num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()
  if shuffle_buffer:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
  return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def build_model(config: Dict[str, Any], tft_output: tft.TFTransformOutput
                ) -> DualEncoder:
  model_config, train_config = config["model"], config["train"]
  model = DualEncoder(
      item_vocab_size=tft_output.vocabulary_size_by_name(F.ITEM_VOCAB)
      + F.NUM_RESERVED_IDS,
      genre_vocab_size=tft_output.vocabulary_size_by_name(F.GENRE_VOCAB)
      + F.NUM_RESERVED_IDS,
      encoder=model_config["encoder"],
      embedding_dim=model_config["embedding_dim"],
      side_embedding_dim=model_config["side_embedding_dim"])
  model.compile(
      optimizer=keras.optimizers.Adam(train_config["learning_rate"]),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      # Unfiltered (no history excluded): a training-time signal only; the
      # protocol's metrics are computed by TFMA on the test split.
      metrics=[keras.metrics.SparseTopKCategoricalAccuracy(
          k=10, name="hit_rate_at_10_unfiltered")])
  return model


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  config = fn_args.custom_config
  train_config = config["train"]
  keras.utils.set_random_seed(train_config["seed"])
  tft_output = tft.TFTransformOutput(fn_args.transform_output)

  train = make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output,
                       train_config["batch_size"],
                       shuffle_buffer=train_config["shuffle_buffer"],
                       seed=train_config["seed"])
  evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor,
                            tft_output, train_config["batch_size"])
  model = build_model(config, tft_output)
  history = model.fit(
      train, validation_data=evaluation, epochs=train_config["epochs"],
      verbose=2,
      callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)])
  logging.info("Training history: %s", json.dumps(history.history))

  session = config["session"]
  export = serving.RecommenderExport(
      model, tft_output, context_length=session["max_context_length"],
      genre_length=session["max_context_genres"],
      top_k=config["serving"]["top_k"])
  serving.save(export, fn_args.serving_model_dir)
  tflite_dir = os.path.join(os.path.dirname(fn_args.serving_model_dir),
                            TFLITE_DIR)
  tf.io.gfile.makedirs(tflite_dir)
  with tf.io.gfile.GFile(os.path.join(tflite_dir, TFLITE_FILE), "wb") as f:
    f.write(tflite.convert(fn_args.serving_model_dir))
