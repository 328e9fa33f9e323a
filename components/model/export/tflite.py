"""TFLite conversion, and calling the converted models as an app does.

Conversion allows TFLite builtin ops only (no TF Select): the model then runs
with the plain TFLite runtime an app ships. The retrieval model's file holds
its `ondevice` signature (vocabulary indices, a static batch of one);
`TFLiteRecommender` calls it as an app does, mapping a history of raw item ids
(with their position features, e.g. ratings, genres and years) with the
model's input_mapping.json. The next-item ranker's file holds `rank`
(`TFLiteRanker`), which re-orders retrieval's best candidates
(`TwoStageRecommender`). The rating model's file holds its string-input
`serving_default` (`TFLiteRater`).
"""
import contextlib
import io
import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from components.lib import features as F
from components.lib import layout
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export.input_mapping import FIRST_INDEX, InputMapping
from components.model.export.signature_names import (CANDIDATE_ITEM_ID,
                                                     ONDEVICE, RANK, RATINGS,
                                                     SCORES, SERVING,
                                                     TOP_ITEM_INDICES,
                                                     TOP_SCORES)

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


class QuantizationError(ValueError):
  """A quantization the model's graph does not allow; the message says why."""


def convert(saved_model_dir: str, signature: str = SERVING,
            quantization: str = "none",
            representative: Optional[Callable[[], Iterator[Dict[str, np.ndarray]]]]
            = None) -> bytes:
  """Converts one signature of the SavedModel; builtin ops only.

  `quantization` (settings.QUANTIZATIONS): "float16" stores the weights as
  float16 (about half the bytes; dequantized when loaded), "dynamic" as int8
  with float activations, "int8" quantizes weights and activations with
  ranges calibrated on `representative` (inputs of the signature, one
  example each), every op in int8. Bucket boundaries are op attributes and
  stay exact (features.bucketize); any rounding shows in the file's
  evaluation, never assumed away.
  """
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved_model_dir, signature_keys=[signature])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantization != "none":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantization == "float16":
    converter.target_spec.supported_types = [tf.float16]
  elif quantization == "int8":
    if representative is None:
      raise QuantizationError("int8 quantization needs representative "
                              "examples to calibrate the activations")
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  try:
    with _native_stderr_silenced():
      return converter.convert()
  except Exception as e:  # pylint: disable=broad-except
    if quantization == "none":
      raise
    reason = str(e).strip().splitlines()
    raise QuantizationError(
        f"the model's {signature} signature cannot be converted with "
        f"{quantization} quantization: "
        f"{reason[0] if reason else type(e).__name__}") from e


def save_representative(examples: Iterator[Dict[str, np.ndarray]],
                        path: str) -> None:
  """Writes examples ({input: [1, width]}) for int8 calibration."""
  examples = list(examples)
  buffer = io.BytesIO()  # numpy seeks in what it writes; a GFile cannot
  np.savez_compressed(buffer, **{
      name: np.concatenate([e[name] for e in examples]) for name in examples[0]})
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())


def convert_ondevice(tflite_dir: str, quantization: str) -> bytes:
  """model.tflite of a retrieval Model's Format-TFLite directory (its
  on-device SavedModel and representative inputs) with `quantization`."""
  with tf.io.gfile.GFile(os.path.join(tflite_dir, layout.REPRESENTATIVE_INPUTS),
                         "rb") as f:
    arrays = dict(np.load(io.BytesIO(f.read())))

  def representative():
    for row in range(len(next(iter(arrays.values())))):
      yield {name: values[row:row + 1] for name, values in arrays.items()}
  return convert(os.path.join(tflite_dir, layout.ONDEVICE_SAVED_MODEL),
                 ONDEVICE, quantization, representative)


def _fit(values: Sequence, length: int, pad) -> List:
  """The most recent `length` values, padded at the end."""
  values = list(values)[-length:]
  return values + [pad] * (length - len(values))


class TFLiteRecommender:
  """Runs a retrieval model.tflite on one history at a time, as an app would.

  The raw query (item ids, position features such as MovieLens ratings,
  years and genre slots, user features) is mapped to the model's index
  inputs with its input_mapping.json (input_mapping.py: unknown ids are
  UNKNOWN, missing values as the SavedModel treats them), the model is
  invoked, and the context's own items are dropped from its top indices; a
  history with no items gets the most popular items without a call.
  Tensors are allocated once (the inputs have a static batch of one); each
  query sets the inputs and invokes, as an Android app's Interpreter does.
  """

  def __init__(self, model_path: str, num_threads: int = 1,
               mapping_path: Optional[str] = None):
    self.mapping = InputMapping.load(mapping_path or os.path.join(
        os.path.dirname(model_path), layout.INPUT_MAPPING))
    self.interpreter = tf.lite.Interpreter(model_path=model_path,
                                           num_threads=num_threads)
    runner = self.interpreter.get_signature_runner(ONDEVICE)
    self._input_index = {name: d["index"]
                         for name, d in runner.get_input_details().items()}
    self._outputs = {name: d["index"]
                     for name, d in runner.get_output_details().items()}
    del runner  # the interpreter is used directly (allocated once)
    if set(self._input_index) != set(self.mapping.inputs):
      raise ValueError(f"{model_path} takes {sorted(self._input_index)}, its "
                       f"input mapping gives {sorted(self.mapping.inputs)}")
    self.interpreter.allocate_tensors()
    self.context_length = self.mapping.context_length
    self._inputs = self.mapping.empty_inputs()  # filled in place per query
    self._context: List[int] = []

  @property
  def inputs(self) -> Dict[str, str]:
    """{input name: 'sequence' or 'static'}: what a query may give."""
    return {name: i.kind for name, i in self.mapping.inputs.items()}

  def parse_value(self, name: str, text: str):
    """A value for input `name` from text (numbers for bucketed inputs)."""
    return text if self.mapping.inputs[name].vocabulary else float(text)

  def recommend(self, item_ids: Sequence[str],
                features: Optional[Dict[str, Sequence]] = None,
                user: Optional[Dict[str, object]] = None
                ) -> Tuple[List[str], np.ndarray]:
    """History oldest -> newest; returns (top item ids, scores), the
    history's own items (those within the context) excluded.

    `features`: position features by input name, one entry per history item
    (a list of values for a slotted one such as MovieLens genres), e.g.
    {"context_rating": [4.0, 5.0], "context_genre": [["Drama"], []]};
    `user`: user features by input name. Missing ones are "unknown".
    """
    if not self._invoke(item_ids, features, user):
      return self.mapping.most_popular()
    return self.mapping.recommendations(
        self._context, self.interpreter.get_tensor(
            self._outputs[TOP_ITEM_INDICES])[0],
        self.interpreter.get_tensor(self._outputs[TOP_SCORES])[0])

  def set_inputs(self, item_ids: Sequence[str],
                 features: Optional[Dict[str, Sequence]] = None,
                 user: Optional[Dict[str, object]] = None) -> None:
    """The input tensors of one query (`recommend`'s arguments), without
    invoking: what an app prepares before each call."""
    self._context = self.mapping.fill(self._inputs, item_ids, features, user)
    for name, values in self._inputs.items():
      self.interpreter.set_tensor(self._input_index[name], values)

  def catalog_scores(self, item_ids: Sequence[str],
                     features: Optional[Dict[str, Sequence]] = None,
                     user: Optional[Dict[str, object]] = None) -> np.ndarray:
    """The scores of every index (PADDING and UNKNOWN too) for a query
    (`recommend`'s arguments), before any exclusion: the model's, or the
    popularity for a history with no items."""
    if not self._invoke(item_ids, features, user):
      return self.mapping.popularity_scores()
    return self.interpreter.get_tensor(self._outputs[SCORES])[0]

  @property
  def query_inputs(self) -> Dict[str, np.ndarray]:
    """The index inputs of the last query ({name: [1, width] int32}): the
    ranker takes the same context and user indices."""
    return self._inputs

  def _invoke(self, item_ids, features, user) -> bool:
    """Sets a query's inputs and calls the model; False, without a call,
    for a history with no items (the mapping's popularity answers it)."""
    self.set_inputs(item_ids, features, user)
    if not self._context:
      return False
    self.interpreter.invoke()
    return True


class TFLiteRanker:
  """Runs a next-item ranker's model.tflite (`rank`) as an app would:
  candidates are vocabulary indices (int32, PADDING in unused slots) with
  their retrieval scores, beside the context and user indices the app gave
  the retrieval model; returns one score per slot."""

  def __init__(self, model_path: str, num_threads: int = 1):
    self.interpreter = tf.lite.Interpreter(model_path=model_path,
                                           num_threads=num_threads)
    runner = self.interpreter.get_signature_runner(RANK)
    details = runner.get_input_details()
    self._input_index = {name: d["index"] for name, d in details.items()}
    (self._scores,) = [d["index"] for name, d in
                       runner.get_output_details().items() if name == SCORES]
    del runner  # the interpreter is used directly (allocated once)
    self.candidates = int(details[F.CANDIDATE_ITEM_INDEX]["shape"][-1])
    self.interpreter.allocate_tensors()

  @property
  def query_input_names(self) -> List[str]:
    """The inputs it shares with the retrieval model (context, user)."""
    return sorted(set(self._input_index) - {F.CANDIDATE_ITEM_INDEX,
                                            F.CANDIDATE_SCORE})

  def set_inputs(self, candidates: np.ndarray, candidate_scores: np.ndarray,
                 query_inputs: Dict[str, np.ndarray]) -> None:
    """`candidates` [1, n] int32 and their scores [1, n] float32, and the
    retrieval model's index inputs of the query (those it takes)."""
    self.interpreter.set_tensor(self._input_index[F.CANDIDATE_ITEM_INDEX],
                                candidates)
    self.interpreter.set_tensor(self._input_index[F.CANDIDATE_SCORE],
                                candidate_scores)
    for name in self.query_input_names:
      self.interpreter.set_tensor(self._input_index[name], query_inputs[name])

  def rank(self, candidates: np.ndarray, candidate_scores: np.ndarray,
           query_inputs: Dict[str, np.ndarray]) -> np.ndarray:
    """[n] the ranker's score of each slot (see `set_inputs`)."""
    self.set_inputs(candidates, candidate_scores, query_inputs)
    self.interpreter.invoke()
    return self.interpreter.get_tensor(self._scores)[0]


class TwoStageRecommender:
  """Retrieval's model.tflite, then the ranker's over its best candidates,
  as the ranker bundle's metadata.json tells an app to chain them: the
  retrieval scores of the catalog with the excluded items (the history,
  PADDING, UNKNOWN) dropped, its best `ranker.candidates` indices (ties:
  the lower index first, as tf.math.top_k orders them) with their scores,
  ranked by the ranker with the same context and user indices. A history
  with no items gets retrieval's most popular items (nothing to rank for).
  """

  def __init__(self, retrieval: TFLiteRecommender, ranker: TFLiteRanker):
    self.retrieval = retrieval
    self.ranker = ranker

  def candidates(self, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Catalog scores (excluded items at EXCLUDED_SCORE) -> the ranker's
    inputs: [1, n] int32 indices (PADDING where fewer items are left) and
    [1, n] float32 scores. The n best are selected (not the catalog sorted):
    those above the n-th score, then the lowest indices tied with it."""
    n = self.ranker.candidates
    if len(scores) > n:
      kth = scores[np.argpartition(-scores, n - 1)[n - 1]]
      above = np.flatnonzero(scores > kth)
      top = np.concatenate([above, np.flatnonzero(scores == kth)[
          :n - len(above)]])
    else:
      top = np.arange(len(scores))
    top = top[np.lexsort((top, -scores[top]))]
    values = scores[top].astype(np.float32)
    indices = np.where(values > EXCLUDED_SCORE, top, F.PAD_ID)
    width = n - len(top)  # a catalog smaller than n
    return (np.pad(indices, (0, width))[np.newaxis].astype(np.int32),
            np.pad(values, (0, width), constant_values=EXCLUDED_SCORE
                   )[np.newaxis])

  def _ranked(self, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(the candidate slots' item indices [n], PADDING where none; the
    ranker's score of each slot [n]) for the last retrieval query."""
    indices, values = self.candidates(scores)
    return indices[0], self.ranker.rank(indices, values,
                                        self.retrieval.query_inputs)

  def rerank(self, scores: np.ndarray) -> np.ndarray:
    """The two stages' catalog scores of the last retrieval query, given
    its catalog scores with the excluded items at EXCLUDED_SCORE: the
    candidates in the ranker's order above every other item, which keeps
    its retrieval score (as the chain's SavedModel scores them for TFMA)."""
    indices, ranked = self._ranked(scores)
    valid = indices >= FIRST_INDEX
    chained = scores.copy()
    chained[indices[valid]] = (scores.max() + 1.0 + ranked[valid]
                               - ranked[valid].min())
    return chained

  def recommend(self, item_ids: Sequence[str],
                features: Optional[Dict[str, Sequence]] = None,
                user: Optional[Dict[str, object]] = None,
                excluded: Sequence[str] = ()
                ) -> Tuple[List[str], np.ndarray, List[int]]:
    """`TFLiteRecommender.recommend`'s query -> (the top_k item ids, their
    ranker scores, each one's place in retrieval's order, 0 first); the
    context's items and `excluded` (more of the user's history) dropped."""
    if not item_ids:
      ids, popular = self.retrieval.recommend(item_ids, features, user)
      return ids, popular, list(range(len(ids)))
    scores = self.retrieval.catalog_scores(item_ids, features, user).copy()
    mapping = self.retrieval.mapping
    # The context's indices are the query's input already; a longer
    # history's older items are mapped here.
    scores[self.retrieval.query_inputs[F.CONTEXT_ITEM_ID][0]] = EXCLUDED_SCORE
    older = list(item_ids)[:-mapping.context_length] + list(excluded)
    if older:
      scores[mapping.item_indices(older)] = EXCLUDED_SCORE
    scores[[F.PAD_ID, F.OOV_ID]] = EXCLUDED_SCORE
    indices, ranked = self._ranked(scores)
    valid = np.flatnonzero(indices >= FIRST_INDEX)
    order = valid[np.argsort(-ranked[valid], kind="stable")][:mapping.top_k]
    return ([mapping.item_id(int(indices[k])) for k in order], ranked[order],
            order.tolist())


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
