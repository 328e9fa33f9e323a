"""A small retrieval model, trained and exported once, for the tests of its
export, its TFLite conversion and the pusher: users who watch items in id
order, so a model of the context must learn that the next item follows."""
import os

import numpy as np
import tensorflow as tf
import tf_keras
from tfx.utils import path_utils

from components.lib import features as F
from components.lib import layout
from components.lib import settings
from components.model.export import retrieval
from components.model.export import tflite
from components.user_modules import training
from components.user_modules.trainer import (TrainerSettings, build_model,
                                             representative_inputs)
from tests.support.sessions import GENRE_SLOTS, analyze_and_transform
from tests.support.sessions import custom_config, feature_config, session

CONTEXT, TOP_K = 4, 20
ITEMS = [f"{100 + i}".encode() for i in range(30)]
GENRE_OF = {item: [b"Drama" if i % 2 else b"Comedy"] + ([b"War"] if i % 3 == 0
                                                         else [])
            for i, item in enumerate(ITEMS)}
FEATURES = feature_config(item_dim=16)
SETTINGS = TrainerSettings(
    features=FEATURES,
    session=settings.SessionConfig(max_context_length=CONTEXT),
    model=settings.ModelConfig(encoder="attention", dropout=0.0,
                               attention_units=16, attention_layers=1),
    train=settings.TrainConfig(learning_rate=0.02, num_negatives=8),
    serving=settings.ServingConfig(top_k=TOP_K, quantization="none"))


def example(context, label, history=None, user=b"u"):
  return session(label, context, ratings=[4.0] * len(context),
                 years=[1990 + len(c) for c in context],
                 genres=[GENRE_OF.get(c, []) for c in context],
                 history=history or [], user=user)


def user_examples(start, length, user):
  """Disjoint train windows of a user who watches items in id order from
  `start`."""
  seq = [ITEMS[(start + i) % len(ITEMS)] for i in range(length)]
  return [example(seq[i:i + CONTEXT], seq[i + CONTEXT], user=user)
          for i in range(0, length - CONTEXT, CONTEXT + 1)]


def export(tmp) -> dict:
  """Trains and exports the model under `tmp`: its SavedModel (loaded and
  its path), TFLite file, test examples, Transform output and train data."""
  train = [e for u in range(40) for e in user_examples(u, 16, str(u).encode())]
  # Test users with long histories (more than the context) and short ones.
  test = []
  for u in range(6):
    seq = [ITEMS[(3 * u + i) % len(ITEMS)] for i in range(8 if u % 2 else 3)]
    test.append(example(seq[:-1][-CONTEXT:], seq[-1], history=seq[:-1],
                        user=b"t"))
  transformed_train, _, tft_output = analyze_and_transform(
      train, [test], custom_config(FEATURES, CONTEXT), str(tmp))
  tf_keras.utils.set_random_seed(1)
  model = build_model(SETTINGS, tft_output)
  x = {k: np.stack([r[k] for r in transformed_train])
       for k in FEATURES.input_names()}
  y = np.array([r[F.LABEL_ITEM_ID] for r in transformed_train])
  model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), epochs=40,
            verbose=0)
  # Laid out as the Trainer lays out its Model artifact.
  model_uri = str(tmp / "model")
  path = path_utils.serving_model_path(model_uri)
  exporter = retrieval.RecommenderExport(model, tft_output, FEATURES, CONTEXT,
                                         TOP_K)
  exporter.save(path)
  tflite_dir = training.tflite_dir(path)
  mapping = exporter.input_mapping()
  exporter.ondevice.save(os.path.join(tflite_dir,
                                      layout.ONDEVICE_SAVED_MODEL))
  tflite.save_representative(
      representative_inputs(tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
                            list(mapping.inputs)),
      os.path.join(tflite_dir, layout.REPRESENTATIVE_INPUTS))
  training.write_model_files(
      path, {"epochs": 40}, SETTINGS,
      tflite.convert_ondevice(tflite_dir, SETTINGS.serving.quantization),
      mapping)
  return {"saved_model": tf.saved_model.load(path), "saved_model_path": path,
          "model_uri": model_uri,
          "tflite": os.path.join(tflite_dir, layout.TFLITE_MODEL),
          "tflite_dir": tflite_dir,
          "test": test, "tft_output": tft_output, "train": train}



def pad(values, n, fill):
  values = list(values)[-n:]
  return values + [fill] * (n - len(values))


def raw_inputs(contexts):
  """serving_default's inputs for a batch of contexts (lists of ids)."""
  genres = [[g for c in ctx[-CONTEXT:]
             for g in pad(GENRE_OF.get(c, [])[:GENRE_SLOTS], GENRE_SLOTS, b"")]
            for ctx in contexts]
  return {
      F.CONTEXT_ITEM_ID: tf.constant([pad(c, CONTEXT, b"") for c in contexts]),
      F.CONTEXT_RATING: tf.constant([pad([4.0] * len(c), CONTEXT, 0.0)
                                     for c in contexts]),
      F.CONTEXT_YEAR: tf.constant([pad([1990 + len(i) for i in c], CONTEXT, 0)
                                   for c in contexts], tf.int32),
      F.CONTEXT_GENRE: tf.constant([pad(g, CONTEXT * GENRE_SLOTS, b"")
                                    for g in genres]),
      F.USER_GENDER: tf.constant([[b"F"]] * len(contexts)),
      F.USER_AGE: tf.constant([[25]] * len(contexts), tf.int32),
  }


def serve(loaded, contexts):
  return loaded.signatures["serving_default"](**raw_inputs(contexts))




def serialized_examples(exported, examples):
  """Session examples (instance dicts) as the pipeline writes them."""
  spec = exported["tft_output"].raw_feature_spec()
  serialized = []
  for example in examples:
    feature = {}
    for name, values in example.items():
      values = values if isinstance(values, list) else [values]
      dtype = spec[name].dtype if name in spec else tf.string
      if dtype == tf.string:
        feature[name] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=values))
      elif dtype == tf.float32:
        feature[name] = tf.train.Feature(
            float_list=tf.train.FloatList(value=values))
      else:
        feature[name] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=values))
    serialized.append(tf.train.Example(features=tf.train.Features(
        feature=feature)).SerializeToString())
  return serialized
