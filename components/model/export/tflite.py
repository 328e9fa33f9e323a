"""TFLite conversion of the serving signature, and the on-device call.

Conversion allows TFLite builtin ops only (no TF Select): the model then runs
with the plain TFLite runtime an app ships. `TFLiteRecommender` calls the
converted model the way an app does: a history of raw item ids (with their
position features, e.g. ratings, genres and years), padded or cut to the
model's context length.
"""
import contextlib
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from components.lib import features as F
from components.model.export.signature_names import (CANDIDATE_ITEM_ID,
                                                     RATINGS, SERVING,
                                                     TOP_ITEM_IDS, TOP_SCORES)

@contextlib.contextmanager
def _native_stderr_silenced():
  """The converter's C++ logging writes notices straight to fd 2; its errors
  come back in the ConverterError it raises, so the notices can go."""
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def convert(saved_model_dir: str, float16_weights: bool = False) -> bytes:
  """Converts the SavedModel's serving_default signature; builtin ops only.

  With `float16_weights` the weights are stored as float16 (about half the
  size) and dequantized when the model is loaded.
  """
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved_model_dir, signature_keys=[SERVING])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if float16_weights:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  with _native_stderr_silenced():
    return converter.convert()


def _fit(values: Sequence, length: int, pad) -> List:
  """The most recent `length` values, padded at the end."""
  values = list(values)[-length:]
  return values + [pad] * (length - len(values))


class TFLiteRecommender:
  """Runs model.tflite on one history at a time, as an app would.

  The model's inputs are read from its signature: the context item ids and
  whichever position features (context_*: MovieLens ratings, years, genre
  slots; Ali-CCP categories, shops, ...) and user features the feature
  config uses; missing values are passed as "unknown" ('' or 0).

  Tensors are allocated once for a batch of one, and each query only sets
  the inputs and invokes, as an Android app's Interpreter does. Python's
  SignatureRunner instead re-allocates on every call, and because string
  inputs are dynamic tensors that re-prepares every op of the graph: for an
  unrolled GRU that more than doubled the time per query.
  """

  def __init__(self, model_path: str, num_threads: int = 1):
    self.interpreter = tf.lite.Interpreter(model_path=model_path,
                                           num_threads=num_threads)
    runner = self.interpreter.get_signature_runner(SERVING)
    inputs = runner.get_input_details()
    self._outputs = {name: d["index"]
                     for name, d in runner.get_output_details().items()}
    del runner  # it holds the interpreter, which refuses resizing while held
    self.inputs = {name: (int(d["shape_signature"][-1]), d["dtype"])
                   for name, d in inputs.items()}
    self._input_index = {name: d["index"] for name, d in inputs.items()}
    for name, (width, _) in self.inputs.items():
      self.interpreter.resize_tensor_input(self._input_index[name], [1, width])
    self.interpreter.allocate_tensors()
    self.context_length = self.inputs[F.CONTEXT_ITEM_ID][0]

  def parse_value(self, name: str, text: str):
    """A value for input `name` from text (numbers for numeric inputs)."""
    dtype = np.dtype(self.inputs[name][1])
    return text if dtype.kind in "SOU" else dtype.type(text)

  def recommend(self, item_ids: Sequence[str],
                features: Optional[Dict[str, Sequence]] = None,
                user: Optional[Dict[str, object]] = None
                ) -> Tuple[List[str], np.ndarray]:
    """History oldest -> newest; returns (top item ids, scores).

    `features`: position features by input name, one entry per history item
    (a list of values for a slotted one such as MovieLens genres), e.g.
    {"context_rating": [4.0, 5.0], "context_genre": [["Drama"], []]};
    `user`: user features by input name. Missing ones are "unknown".
    """
    self.set_inputs(item_ids, features, user)
    self.interpreter.invoke()
    ids = self.interpreter.get_tensor(self._outputs[TOP_ITEM_IDS])[0]
    scores = self.interpreter.get_tensor(self._outputs[TOP_SCORES])[0]
    return [i.decode("utf-8") for i in ids], scores

  def set_inputs(self, item_ids: Sequence[str],
                 features: Optional[Dict[str, Sequence]] = None,
                 user: Optional[Dict[str, object]] = None) -> None:
    """The input tensors of one query (`recommend`'s arguments), without
    invoking: what an app prepares before each call."""
    features = features or {}
    n = len(item_ids)
    for name, values in features.items():
      if name not in self.inputs:
        raise ValueError(f"{name} is not an input of the model "
                         f"({', '.join(sorted(self.inputs))})")
      if len(values) != n:
        raise ValueError(f"{name} must align with item_ids ({n} items)")
    length = self.context_length
    for name, (width, dtype) in self.inputs.items():
      missing = "" if dtype in (np.bytes_, np.object_) else 0
      if name == F.CONTEXT_ITEM_ID:
        values = _fit(item_ids, length, "")
      elif name.startswith(F.CONTEXT_PREFIX):  # a position feature
        slots = width // length
        given = list(features.get(name, [[]] * n))[-length:]
        values = [v for item in given for v in _fit(
            list(item if isinstance(item, (list, tuple)) else [item])[:slots],
            slots, missing)]
        values += [missing] * (width - len(values))
      else:  # a user feature
        value = (user or {}).get(name)
        values = [value if value is not None else missing] * width
      self.interpreter.set_tensor(self._input_index[name], np.array(
          [values], dtype=object if dtype in (np.bytes_, np.object_)
          else dtype))


class TFLiteRater:
  """Runs a pushed rating model (the ranking stage) as an app would: a
  history of raw item ids with their ratings (missing: 0, taken as the
  train mean), the user features it takes, and candidate item ids (the
  retrieval model's top items, up to the model's width); returns one
  predicted rating per candidate."""

  def __init__(self, model_path: str, num_threads: int = 1):
    self.interpreter = tf.lite.Interpreter(model_path=model_path,
                                           num_threads=num_threads)
    self._runner = self.interpreter.get_signature_runner(SERVING)
    self.inputs = {name: (int(d["shape_signature"][-1]), d["dtype"])
                   for name, d in self._runner.get_input_details().items()}
    self.context_length = self.inputs[F.CONTEXT_ITEM_ID][0]

  def rate(self, item_ids: Sequence[str], candidates: Sequence[str],
           ratings: Optional[Sequence[float]] = None,
           user: Optional[Dict[str, object]] = None) -> np.ndarray:
    """[len(candidates)] predicted ratings."""
    if ratings is not None and len(ratings) != len(item_ids):
      raise ValueError(f"ratings must align with item_ids ({len(item_ids)} "
                       "items)")
    length = self.context_length
    arrays = {}
    for name, (width, dtype) in self.inputs.items():
      if name == F.CONTEXT_ITEM_ID:
        values = _fit(item_ids, length, "")
      elif name == F.CONTEXT_RATING:
        values = _fit(ratings or [0.0] * len(item_ids), length, 0.0)
      elif name == CANDIDATE_ITEM_ID:
        if len(candidates) > width:
          raise ValueError(f"the model rates up to {width} candidates, got "
                           f"{len(candidates)}")
        values = list(candidates) + [""] * (width - len(candidates))
      else:  # a user feature
        missing = "" if dtype in (np.bytes_, np.object_) else 0
        value = (user or {}).get(name)
        values = [value if value is not None else missing] * width
      arrays[name] = np.array([values], dtype=object if dtype in (
          np.bytes_, np.object_) else dtype)
    return self._runner(**arrays)[RATINGS][0][:len(candidates)]
