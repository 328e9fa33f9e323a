"""The ranker's files chained as an app chains them (TwoStageRecommender):
the chained float32 files rank the test split as the chain's SavedModel
(what TFMA evaluated), and the ranker is pushed only beside the retrieval
bundle of the model it follows, with metadata.json saying how to chain."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.lib import features as F
from components.lib import layout
from components.model.export import signature_names as names
from components.model.export.tflite import (TFLiteRanker, TFLiteRecommender,
                                            TwoStageRecommender)
from components.tflite_pusher import executor as pusher
from components.tflite_pusher import file_evaluation
from components.user_modules import evaluation
from tests.support.ranker_model import CANDIDATES


def _test_records(ranker_export):
  files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri(
      [ranker_export["sessions"]], F.TEST), "*"))
  return list(tf.data.TFRecordDataset(
      files, compression_type="GZIP").as_numpy_iterator())


def _ranker_file(ranker_export) -> str:
  return os.path.join(ranker_export["model_uri"], layout.TFLITE_DIR,
                      layout.TFLITE_MODEL)


def _two_stages(ranker_export) -> TwoStageRecommender:
  return TwoStageRecommender(
      TFLiteRecommender(ranker_export["retrieval"]["tflite"]),
      TFLiteRanker(_ranker_file(ranker_export)))


def test_the_chained_files_rank_as_the_chain_saved_model(ranker_export):
  records = _test_records(ranker_export)
  chain = tf.saved_model.load(ranker_export["serving"])
  scores = chain.signatures["evaluate"](
      examples=tf.constant(records))[names.SCORES].numpy()
  labels = chain.signatures["transform_features"](
      examples=tf.constant(records))[F.LABEL_ITEM_ID].numpy().reshape(-1)
  ranks = np.array([evaluation.target_rank(row, label)
                    for row, label in zip(scores, labels)])
  chained = file_evaluation.evaluate_file(
      ranker_export["retrieval"]["tflite"], records,
      ranker_path=_ranker_file(ranker_export))
  alone = file_evaluation.evaluate_file(ranker_export["retrieval"]["tflite"],
                                        records)
  assert chained["users"] == len(records)
  assert chained["overall"] == pytest.approx(evaluation.rank_metrics(ranks))
  # The ranker re-orders retrieval's top 3: the hits within them stay hits.
  assert chained["overall"]["hit_rate@5"] == pytest.approx(
      alone["overall"]["hit_rate@5"])
  assert chained["overall"]["hit_rate@1"] != alone["overall"]["hit_rate@1"]


def test_two_stages_reorder_retrieval_candidates(ranker_export):
  two_stages = _two_stages(ranker_export)
  retrieval = two_stages.retrieval
  history = [b"105", b"106", b"107", b"108", b"109"]
  history = [h.decode() for h in history]
  ids, scores, places = two_stages.recommend(history, excluded=["110"])
  # Retrieval's own order, the history excluded: the first three are the
  # candidates, and the ranker orders exactly those.
  catalog = retrieval.catalog_scores(history).copy()
  mapping = retrieval.mapping
  catalog[mapping.item_indices(history + ["110"]) + [F.PAD_ID, F.OOV_ID]] = (
      np.finfo(np.float32).min)
  top = np.argsort(-catalog, kind="stable")[:CANDIDATES]
  assert sorted(ids) == sorted(mapping.item_id(int(i)) for i in top)
  assert sorted(places) == list(range(CANDIDATES))
  assert [mapping.item_id(int(top[p])) for p in places] == ids
  assert list(scores) == sorted(scores, reverse=True)
  assert not set(ids) & set(history + ["110"])
  # No history: retrieval's most popular, nothing to rank for.
  popular, _, _ = two_stages.recommend([])
  assert popular == mapping.most_popular()[0]


def test_the_candidates_are_tf_top_k_s_even_among_ties(ranker_export):
  """The n best as tf.math.top_k orders them (what the chain's SavedModel
  ranks): by score, ties by the lower index; excluded items left out."""
  two_stages = _two_stages(ranker_export)
  rng = np.random.default_rng(0)
  for size in (2, CANDIDATES, 40):
    scores = rng.integers(0, 4, size).astype(np.float32)  # many ties
    scores[rng.integers(0, size, 2)] = np.finfo(np.float32).min
    indices, values = two_stages.candidates(scores)
    top = tf.math.top_k(scores, k=min(CANDIDATES, size))
    want = np.where(top.values.numpy() > np.finfo(np.float32).min,
                    top.indices.numpy(), F.PAD_ID)
    width = CANDIDATES - len(want)
    np.testing.assert_array_equal(indices[0], np.pad(want, (0, width)))
    np.testing.assert_array_equal(values[0][:len(want)], top.values.numpy())


def _retrieval_push(ranker_export, root, pushed: int, other_model=False):
  """The retrieval Pusher's output: when `pushed`, a bundle of the
  retrieval model the ranker follows, or of a copy of it at another URI
  (`other_model`: another Trainer's model)."""
  artifact = standard_artifacts.PushedModel()
  artifact.uri = str(root / "retrieval_pushed")
  artifact.set_int_custom_property("pushed", pushed)
  model_uri = ranker_export["retrieval"]["model_uri"]
  if other_model:
    model_uri = shutil.copytree(model_uri, str(root / "another_model"))
  if pushed:
    bundle = pusher.push(model_uri, str(root / "serving"), None, {})
    artifact.set_string_custom_property("pushed_destination", bundle)
  else:
    artifact.set_string_custom_property("not_pushed_reason", "a test's")
  return artifact


def _push_ranker(ranker_export, root, retrieval_push):
  model = standard_artifacts.Model()
  model.uri = ranker_export["model_uri"]
  blessing = standard_artifacts.ModelBlessing()
  blessing.set_int_custom_property("blessed", 1)
  output = standard_artifacts.PushedModel()
  output.uri = str(root / "ranker_pushed")
  pusher.Executor().Do(
      {"model": [model], "model_blessing": [blessing],
       "examples": [ranker_export["sessions"]],
       "retrieval_push": [retrieval_push]},
      {"pushed_model": [output]},
      {pusher.PUSH_DIR: str(root / "serving" / layout.RANKER_DIR),
       pusher.MAX_TFLITE_DROP: 0.005})
  return output


def test_a_ranker_is_pushed_with_how_to_chain_it(ranker_export, tmp_path):
  retrieval_push = _retrieval_push(ranker_export, tmp_path, 1)
  output = _push_ranker(ranker_export, tmp_path, retrieval_push)
  assert output.get_int_custom_property("pushed") == 1
  bundle = output.get_string_custom_property("pushed_destination")
  assert sorted(os.listdir(bundle)) == sorted([
      layout.BUNDLE_METADATA, layout.TFLITE_MODEL, layout.BUNDLE_SAVED_MODEL])
  with open(os.path.join(bundle, layout.BUNDLE_METADATA)) as f:
    metadata = json.load(f)
  retrieval_bundle = retrieval_push.get_string_custom_property(
      "pushed_destination")
  chain = metadata["chain"]
  assert chain["retrieval_version"] == int(os.path.basename(retrieval_bundle))
  assert chain["candidates"] == CANDIDATES
  assert chain["steps"] == pusher.CHAIN_STEPS
  assert metadata["signature"] == names.RANK
  assert metadata["tflite_evaluation"] == pusher.read_tflite_evaluation(
      output.uri)
  assert metadata["tflite_evaluation"]["tflite_bytes"] == os.path.getsize(
      _ranker_file(ranker_export))
  assert metadata["tflite_evaluation"]["retrieval_tflite_bytes"] == (
      os.path.getsize(ranker_export["retrieval"]["tflite"]))
  assert metadata["tflite_evaluation"]["overall"] == pytest.approx(
      file_evaluation.evaluate_file(
          ranker_export["retrieval"]["tflite"], _test_records(ranker_export),
          ranker_path=_ranker_file(ranker_export))["overall"])


@pytest.mark.parametrize("pushed, other_model, reason", [
    (0, False, "the retrieval model it follows was not pushed (a test's)"),
    (1, True, "not the model the ranker follows")])
def test_a_ranker_is_only_pushed_beside_its_retrieval_model(
    ranker_export, tmp_path, pushed, other_model, reason):
  retrieval_push = _retrieval_push(ranker_export, tmp_path, pushed,
                                   other_model)
  output = _push_ranker(ranker_export, tmp_path, retrieval_push)
  assert output.get_int_custom_property("pushed") == 0
  assert reason in output.get_string_custom_property("not_pushed_reason")
  assert not (tmp_path / "serving" / layout.RANKER_DIR).exists()
