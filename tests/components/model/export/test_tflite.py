"""The TFLite conversion and the on-device call: builtin ops only, and the
same top 10 as the SavedModel over many calls on one interpreter."""
import numpy as np
import tensorflow as tf

from components.lib import features as F
from components.model.export import retrieval
from components.model.export import tflite
from tests.support.retrieval_model import CONTEXT, GENRE_OF, ITEMS, serve


def test_tflite_matches_saved_model_top_10(retrieval_export):
  recommender = tflite.TFLiteRecommender(retrieval_export["tflite"])
  assert recommender.context_length == CONTEXT
  rng = np.random.default_rng(0)
  contexts = [list(rng.choice(ITEMS, size=n, replace=False))
              for n in rng.integers(0, 9, size=40)]
  saved = serve(retrieval_export["saved_model"], contexts)
  saved_ids = saved[retrieval.TOP_ITEM_IDS].numpy()
  saved_scores = saved[retrieval.TOP_SCORES].numpy()
  # Many calls in a row on one interpreter: no state may leak between them.
  for context, want_ids, want_scores in zip(contexts, saved_ids, saved_scores):
    recent = context[-CONTEXT:]
    ids, scores = recommender.recommend(
        [c.decode() for c in context], {
            F.CONTEXT_RATING: [4.0] * len(context),
            F.CONTEXT_GENRE: [[g.decode() for g in GENRE_OF[c]]
                              for c in context],
            F.CONTEXT_YEAR: [1990 + len(c) for c in context]},
        user={F.USER_GENDER: "F", F.USER_AGE: 25})
    assert ids[:10] == [i.decode() for i in want_ids[:10]], recent
    np.testing.assert_allclose(scores[:10], want_scores[:10], rtol=1e-4,
                               atol=1e-4)


def test_tflite_uses_builtin_ops_only(retrieval_export):
  # A model needing TF Select (Flex) ops fails to run in a plain interpreter
  # with "Select TensorFlow op(s) ... not supported"; allocation proves it.
  interpreter = tf.lite.Interpreter(model_path=retrieval_export["tflite"])
  interpreter.allocate_tensors()
  ops = {d["op_name"] for d in interpreter._get_ops_details()}  # pylint: disable=protected-access
  assert not any(op.startswith("Flex") for op in ops), ops
  assert "HASHTABLE_FIND" in ops or "HASHTABLE_LOOKUP" in ops, ops


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
    for float16 in (False, True):
      interpreter = tf.lite.Interpreter(
          model_content=tflite.convert(path, float16_weights=float16))
      runner = interpreter.get_signature_runner(tflite.SERVING)
      np.testing.assert_array_equal(runner(x=values)["ids"], want,
                                    err_msg=f"float16={float16}")
