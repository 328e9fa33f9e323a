"""The TFLite conversion and the on-device call: builtin ops only, no dynamic
tensors (XNNPACK takes the graph), and the same top 10 as the SavedModel over
many calls on one interpreter, through the input mapping."""
import collections
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components.lib import features as F
from components.lib import layout
from components.lib.settings import QUANTIZATIONS
from components.model.export import retrieval
from components.model.export import tflite
from tests.support.retrieval_model import CONTEXT, GENRE_OF, ITEMS, serve


def _query(context):
  return ([c.decode() for c in context],
          {F.CONTEXT_RATING: [4.0] * len(context),
           F.CONTEXT_GENRE: [[g.decode() for g in GENRE_OF.get(c, [])]
                             for c in context],
           F.CONTEXT_YEAR: [1990 + len(c) for c in context]},
          {F.USER_GENDER: "F", F.USER_AGE: 25})


def test_tflite_matches_saved_model_top_10(retrieval_export):
  recommender = tflite.TFLiteRecommender(retrieval_export["tflite"])
  assert recommender.context_length == CONTEXT
  rng = np.random.default_rng(0)
  # Empty, short and longer-than-the-context histories, and ids the model
  # does not know, in a row on one interpreter: no state may leak.
  contexts = [list(rng.choice(ITEMS, size=n, replace=False))
              for n in rng.integers(0, 9, size=40)]
  contexts += [[b"999", ITEMS[3]], [ITEMS[5], b"unknown", ITEMS[6]]]
  saved = serve(retrieval_export["saved_model"], contexts)
  saved_ids = saved[retrieval.TOP_ITEM_IDS].numpy()
  saved_scores = saved[retrieval.TOP_SCORES].numpy()
  for context, want_ids, want_scores in zip(contexts, saved_ids, saved_scores):
    ids, scores = recommender.recommend(*_query(context))
    assert len(ids) == len(want_ids)
    assert ids[:10] == [i.decode() for i in want_ids[:10]], context
    assert not set(ids) & {c.decode() for c in context[-CONTEXT:]}
    if context:  # an empty one gets popularity: counts there, shares here
      np.testing.assert_allclose(scores[:10], want_scores[:10], rtol=1e-4,
                                 atol=1e-4)


def test_tflite_has_static_index_inputs_and_builtin_ops(retrieval_export):
  # A model needing TF Select (Flex) ops fails to run in a plain interpreter
  # with "Select TensorFlow op(s) ... not supported"; allocation proves it.
  interpreter = tf.lite.Interpreter(model_path=retrieval_export["tflite"])
  interpreter.allocate_tensors()
  ops = {d["op_name"] for d in interpreter._get_ops_details()}  # pylint: disable=protected-access
  assert not any(op.startswith("Flex") for op in ops), ops
  assert not ops & {"HASHTABLE_FIND", "HASHTABLE_LOOKUP", "CALL_ONCE"}, ops
  runner = interpreter.get_signature_runner(tflite.ONDEVICE)
  for name, detail in runner.get_input_details().items():
    assert detail["dtype"] == np.int32, name
    assert list(detail["shape_signature"])[0] == 1, name
  for detail in interpreter.get_tensor_details():
    assert detail["dtype"] not in (np.bytes_, np.object_), detail["name"]


def test_the_graph_does_little_per_query(retrieval_export):
  # At a batch of one the number of ops, not the arithmetic, sets the time.
  interpreter = tf.lite.Interpreter(model_path=retrieval_export["tflite"])
  ops = collections.Counter(d["op_name"] for d in
                            interpreter._get_ops_details())  # pylint: disable=protected-access
  # Padding masks: one from the item ids (the encoder's), one counting the
  # genre slots; a feature with one value per position is a plain lookup.
  assert ops["NOT_EQUAL"] == 2, ops
  # Over the catalog: the product and one top-k; no exclusion, no select.
  assert ops["TOPK_V2"] == 1, ops
  assert not ops.keys() & {"SCATTER_ND", "SELECT_V2", "REDUCE_ALL"}, ops


def test_xnnpack_takes_the_graph(retrieval_export):
  # TFLite logs a refusal to stderr from C++ when a tensor is dynamic.
  script = ("from components.model.export import tflite; tflite."
            f"TFLiteRecommender({retrieval_export['tflite']!r}).recommend("
            f"[{ITEMS[0].decode()!r}])")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, check=True)
  assert "XNNPACK delegate" in result.stderr, result.stderr
  assert "dynamic-sized tensors" not in result.stderr, result.stderr


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_every_quantization_converts_and_runs(retrieval_export, tmp_path,
                                              quantization):
  tflite_dir = retrieval_export["tflite_dir"]
  path = tmp_path / layout.TFLITE_MODEL
  path.write_bytes(tflite.convert_ondevice(tflite_dir, quantization))
  recommender = tflite.TFLiteRecommender(
      str(path), mapping_path=f"{tflite_dir}/{layout.INPUT_MAPPING}")
  ids, scores = recommender.recommend(*_query(ITEMS[:3]))
  assert len(ids) == recommender.mapping.top_k
  assert not set(ids) & {i.decode() for i in ITEMS[:3]}
  assert np.all(np.diff(scores) <= 1e-6)


def test_int8_without_calibration_examples_is_a_clear_error(retrieval_export):
  with pytest.raises(tflite.QuantizationError, match="representative"):
    tflite.convert(f"{retrieval_export['tflite_dir']}/"
                   f"{layout.ONDEVICE_SAVED_MODEL}", tflite.ONDEVICE, "int8")


class _Bucketized(tf.Module):
  """Bucket ids of numbers and their embeddings: float16 conversion has
  weights to round, and the bucket boundaries must not be among them."""

  def __init__(self, start: float, width: float, count: int):
    super().__init__()
    self.buckets = (start, width, count)
    self.table = tf.Variable(np.random.default_rng(0).normal(
        size=(count + F.NUM_RESERVED_IDS, 8)).astype(np.float32))

  @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float32, "x")])
  def serve(self, x):
    ids = F.bucketize(x, *self.buckets)
    return {"ids": ids, "embeddings": tf.gather(self.table, ids)}


def test_float16_weights_keep_every_bucket_boundary(tmp_path):
  # A ratings-like and a years-like feature, each read on every boundary
  # (where a rounded boundary moves the value to the neighbouring bucket).
  for start, width, count in [(0.2, 0.2, 25), (1919.0, 1.0, 100)]:
    module = _Bucketized(start, width, count)
    path = str(tmp_path / f"model-{count}")
    tf.saved_model.save(module, path, signatures={
        tflite.SERVING: module.serve.get_concrete_function()})
    values = np.array([[start + b * width for b in range(-1, count + 2)]],
                      np.float32)
    want = module.serve(tf.constant(values))["ids"].numpy()
    for quantization in ("none", "float16"):
      interpreter = tf.lite.Interpreter(
          model_content=tflite.convert(path, quantization=quantization))
      runner = interpreter.get_signature_runner(tflite.SERVING)
      np.testing.assert_array_equal(runner(x=values)["ids"], want,
                                    err_msg=quantization)
