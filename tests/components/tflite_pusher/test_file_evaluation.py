"""model.tflite evaluated as the file: through the input mapping and the
interpreter, ranked as TFMA ranks the SavedModel (a float32 file gives the
SavedModel's own ranks), per slice, and the push refused on a drop."""
import copy

import numpy as np
import pytest
import tensorflow as tf

from components.lib import features as F
from components.lib import slices
from components.model.export import signature_names as names
from components.tflite_pusher import file_evaluation
from components.user_modules import evaluation
from tests.support.retrieval_model import serialized_examples


def _test_examples(retrieval_export):
  """The model's test examples, each in a history-length slice."""
  examples = copy.deepcopy(retrieval_export["test"])
  for example in examples:
    example[slices.HISTORY_LENGTH] = [
        b"long" if len(example[F.HISTORY_ITEM_ID]) > 4 else b"short"]
  return serialized_examples(retrieval_export, examples), examples


def test_float32_file_ranks_as_the_saved_model(retrieval_export):
  serialized, examples = _test_examples(retrieval_export)
  scores = retrieval_export["saved_model"].signatures["evaluate"](
      examples=tf.constant(serialized))[names.SCORES].numpy()
  labels = retrieval_export["saved_model"].signatures["transform_features"](
      examples=tf.constant(serialized))[F.LABEL_ITEM_ID].numpy().reshape(-1)
  ranks = np.array([evaluation.target_rank(row, label)
                    for row, label in zip(scores, labels)])
  found = file_evaluation.evaluate_file(retrieval_export["tflite"], serialized)
  assert found["users"] == len(examples)
  assert found["overall"] == pytest.approx(evaluation.rank_metrics(ranks))
  long_history = np.array([len(e[F.HISTORY_ITEM_ID]) > 4 for e in examples])
  by_length = found["slices"][slices.HISTORY_LENGTH]
  assert by_length["long"]["users"] == long_history.sum()
  assert by_length["long"] == pytest.approx(
      {**evaluation.rank_metrics(ranks[long_history]),
       "users": long_history.sum()})
  assert by_length["short"] == pytest.approx(
      {**evaluation.rank_metrics(ranks[~long_history]),
       "users": (~long_history).sum()})


def test_push_refusal_names_both_figures():
  assert file_evaluation.push_refusal(0.30, 0.302, 0.005) is None
  assert file_evaluation.push_refusal(0.30, None, 0.005) is None
  refusal = file_evaluation.push_refusal(0.20, 0.30, 0.005)
  assert "0.2000" in refusal and "0.3000" in refusal
  assert "serving.max_tflite_drop is 0.005" in refusal
