"""TFLite conversion of the serving signature, and the on-device call.

Conversion allows TFLite builtin ops only (no TF Select): the model then runs
with the plain TFLite runtime an app ships. `TFLiteRecommender` calls the
converted model the way an app does: a history of raw item ids (with their
ratings, genres and years), padded or cut to the model's context length.
"""
import contextlib
import os
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from components import features as F

SIGNATURE = "serving_default"


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


def convert(saved_model_dir: str) -> bytes:
  """Converts the SavedModel's serving_default signature; builtin ops only."""
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved_model_dir, signature_keys=[SIGNATURE])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  with _native_stderr_silenced():
    return converter.convert()


def _fit(values: Sequence, length: int, pad) -> List:
  """The most recent `length` values, padded at the end."""
  values = list(values)[-length:]
  return values + [pad] * (length - len(values))


class TFLiteRecommender:
  """Runs model.tflite on one history at a time, as an app would."""

  def __init__(self, model_path: str, num_threads: int = 1):
    self.interpreter = tf.lite.Interpreter(model_path=model_path,
                                           num_threads=num_threads)
    self._runner = self.interpreter.get_signature_runner(SIGNATURE)
    inputs = self._runner.get_input_details()
    self.context_length = int(inputs[F.CONTEXT_ITEM_ID]["shape_signature"][-1])
    self.genre_length = int(inputs[F.CONTEXT_GENRE]["shape_signature"][-1])

  def recommend(self, item_ids: Sequence[str],
                ratings: Optional[Sequence[float]] = None,
                genres: Optional[Sequence[Sequence[str]]] = None,
                years: Optional[Sequence[int]] = None
                ) -> Tuple[List[str], np.ndarray]:
    """History oldest -> newest; returns (top item ids, scores)."""
    n = len(item_ids)
    ratings = ratings if ratings is not None else [0.0] * n
    years = years if years is not None else [0] * n
    genres = genres if genres is not None else [[]] * n
    if not len(ratings) == len(years) == len(genres) == n:
      raise ValueError("ratings, genres and years must align with item_ids")
    recent = slice(max(0, n - self.context_length), n)
    flat_genres = [g for item_genres in genres[recent] for g in item_genres]
    out = self._runner(**{
        F.CONTEXT_ITEM_ID: np.array(
            [_fit(item_ids, self.context_length, "")], dtype=object),
        F.CONTEXT_RATING: np.array(
            [_fit(ratings, self.context_length, 0.0)], np.float32),
        F.CONTEXT_GENRE: np.array(
            [_fit(flat_genres, self.genre_length, "")], dtype=object),
        F.CONTEXT_YEAR: np.array(
            [_fit(years, self.context_length, 0)], np.int32),
    })
    ids = [i.decode("utf-8") for i in out["top_item_ids"][0]]
    return ids, out["top_scores"][0]


def measure_latency(recommender: TFLiteRecommender,
                    histories: Sequence[Sequence[str]]) -> Dict[str, float]:
  """Milliseconds per query, one query at a time (as on a device)."""
  recommender.recommend(histories[0])  # first call allocates tensors
  times = []
  for history in histories:
    started = time.perf_counter()
    recommender.recommend(history)
    times.append((time.perf_counter() - started) * 1000.0)
  times.sort()
  return {"queries": len(times), "median_ms": statistics.median(times),
          "p90_ms": times[int(0.9 * (len(times) - 1))], "max_ms": times[-1]}
