"""CandidateGen: retrieval's top N per example, the label's protocol rank,
and which retrieval model proposes which split's candidates (the ranker's
leakage rule)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.candidate_gen import executor as candidate_gen
from components.lib import features as F
from components.lib import layout
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.user_modules.evaluation import target_rank
from tests.support.retrieval_model import serialized_examples
from tests.support.session_artifacts import sessions_artifact

X = EXCLUDED_SCORE


def test_top_candidates_leave_out_excluded_items_and_rank_the_label():
  scores = np.array([[X, X, 0.5, 2.0, 1.0, 2.0],
                     [X, X, 3.0, X, X, X]], np.float32)
  indices, top, ranks = candidate_gen.top_candidates(scores, np.array([5, 2]),
                                                     3)
  # Best first, ties by index; row 1 has one item left, the rest is PAD.
  np.testing.assert_array_equal(indices, [[3, 5, 4], [2, F.PAD_ID, F.PAD_ID]])
  np.testing.assert_array_equal(top, [[2.0, 2.0, 1.0], [3.0, X, X]])
  # Row 0's label 5 ties with 3: ties count against it (rank 1).
  np.testing.assert_array_equal(ranks, [1, 0])
  # A label outside the top keeps its catalog rank.
  _, _, ranks = candidate_gen.top_candidates(scores, np.array([2, 2]), 1)
  np.testing.assert_array_equal(ranks, [3, 0])


def test_an_example_keeps_its_features_and_gets_its_candidates():
  example = tf.train.Example()
  example.features.feature[F.LABEL_ITEM_ID].bytes_list.value.append(b"7")
  out = tf.train.Example.FromString(candidate_gen.with_candidates(
      example.SerializeToString(), np.array([4, 2]),
      np.array([1.5, 0.5], np.float32), 3))
  feature = out.features.feature
  assert feature[F.LABEL_ITEM_ID].bytes_list.value == [b"7"]
  assert list(feature[F.CANDIDATE_ITEM_INDEX].int64_list.value) == [4, 2]
  assert list(feature[F.CANDIDATE_SCORE].float_list.value) == [1.5, 0.5]
  assert list(feature[F.LABEL_RETRIEVAL_RANK].int64_list.value) == [3]


def _read_split(output, split):
  files = tf.io.gfile.glob(os.path.join(
      artifact_utils.get_split_uri([output], split), "*"))
  return [tf.train.Example.FromString(r) for r in
          tf.data.TFRecordDataset(files, compression_type="GZIP"
                                  ).as_numpy_iterator()]


class _ShiftedModel:
  """A retrieval model's signatures with its scores shifted by one item:
  another model's candidates, told apart from the real one's."""

  def __init__(self, model):
    self._model = model
    self.signatures = {
        "transform_features": model.signatures["transform_features"],
        "evaluate": self._evaluate}

  def _evaluate(self, examples):
    scores = self._model.signatures["evaluate"](examples=examples)["scores"]
    return {"scores": tf.roll(scores, shift=1, axis=1)}


@pytest.fixture(scope="module")
def generated(retrieval_export, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("candidate_gen")
  records = serialized_examples(retrieval_export, retrieval_export["test"])
  sessions = sessions_artifact(str(tmp / "sessions"), {
      split: records for split in candidate_gen.SPLIT_MODELS})
  model = standard_artifacts.Model()
  model.uri = retrieval_export["model_uri"]
  holdout = standard_artifacts.Model()
  holdout.uri = retrieval_export["model_uri"] + "#holdout"
  output = standard_artifacts.Examples()
  output.uri = str(tmp / "candidates")
  loaded = retrieval_export["saved_model"]
  original = candidate_gen._load  # pylint: disable=protected-access
  candidate_gen._load = lambda artifacts: (  # pylint: disable=protected-access
      _ShiftedModel(loaded) if artifacts[0].uri.endswith("#holdout")
      else loaded)
  try:
    candidate_gen.Executor().Do(
        {"examples": [sessions], "model": [model], "holdout_model": [holdout]},
        {"candidates": [output]},
        {candidate_gen.CANDIDATES_PER_EXAMPLE: 5})
  finally:
    candidate_gen._load = original  # pylint: disable=protected-access
  return {"output": output, "records": records, "loaded": loaded}


def _expected(loaded, records, shift=0):
  batch = tf.constant(records)
  scores = np.roll(loaded.signatures["evaluate"](examples=batch)[
      "scores"].numpy(), shift, axis=1)
  labels = loaded.signatures["transform_features"](examples=batch)[
      F.LABEL_ITEM_ID].numpy().reshape(-1)
  return scores, labels


@pytest.mark.parametrize("split, shift", [
    (F.RANKER_TRAIN, 1), (F.EVAL, 0), (F.TEST, 0)])
def test_each_split_gets_the_candidates_of_its_model(generated, split, shift):
  examples = _read_split(generated["output"], split)
  scores, labels = _expected(generated["loaded"], generated["records"], shift)
  assert len(examples) == len(generated["records"])
  for example, row, label in zip(examples, scores, labels):
    feature = example.features.feature
    indices = list(feature[F.CANDIDATE_ITEM_INDEX].int64_list.value)
    got = np.array(feature[F.CANDIDATE_SCORE].float_list.value)
    assert len(indices) == 5
    # The model's five best items, best first, with its scores.
    np.testing.assert_allclose(got, np.sort(row)[::-1][:5], rtol=1e-6)
    np.testing.assert_allclose(row[indices], got, rtol=1e-6)
    # Never an item the history holds (its score is excluded).
    assert all(row[i] > EXCLUDED_SCORE for i in indices)
    assert feature[F.LABEL_RETRIEVAL_RANK].int64_list.value == [
        target_rank(row, int(label))]
    # The session example itself is kept.
    assert feature[F.HISTORY_ITEM_ID].bytes_list.value


def test_the_report_counts_examples_and_labels_among_candidates(generated):
  output = generated["output"]
  with open(os.path.join(output.uri, layout.CANDIDATES_REPORT)) as f:
    report = json.load(f)
  scores, labels = _expected(generated["loaded"], generated["records"])
  ranks = [target_rank(row, int(label)) for row, label in zip(scores, labels)]
  assert report[F.TEST] == {"examples": len(ranks),
                            "label_among_candidates": pytest.approx(
                                np.mean(np.array(ranks) < 5))}
  assert report[candidate_gen.CANDIDATES_PER_EXAMPLE] == 5
  assert artifact_utils.decode_split_names(output.split_names) == list(
      candidate_gen.SPLIT_MODELS)
  assert output.get_int_custom_property(f"{F.TEST}_examples") == len(ranks)
