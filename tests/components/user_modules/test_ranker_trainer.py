"""The ranker's Trainer: label positions, the co-occurrence histories, and
run_fn on CandidateGen's lists of a small retrieval model (the Model
artifact's SavedModel and TFLite file score alike)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.candidate_gen import executor as candidate_gen
from components.lib import features as F
from components.lib import layout
from components.lib import settings
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export.signature_names import RANK, SCORES
from components.user_modules import ranker_trainer
from components.user_modules.evaluation import target_rank
from tests.support.retrieval_model import (CONTEXT, FEATURES, ITEMS, example,
                                           serialized_examples)
from tests.support.session_artifacts import sessions_artifact

P = F.PAD_ID
# Retrieval's top 3: some test labels (those that jump ahead) fall outside.
CANDIDATES = 3


def test_label_positions():
  candidates = np.array([[4, 5, 6], [4, 5, 6], [4, P, P], [1, 5, 6]])
  labels = np.array([6, 7, 4, 1])
  # 7 is no candidate; an OOV label (1) never counts, even if listed.
  np.testing.assert_array_equal(
      ranker_trainer.label_positions(candidates, labels), [2, -1, 0, -1])


def test_earliest_histories_are_each_users_shortest():
  users = [b"b", b"a", b"b", b"a"]
  histories = [np.array([2, 3, 4]), np.array([5]), np.array([2, 3]),
               np.array([5, 6])]
  got = ranker_trainer.earliest_histories(users, histories)
  assert [list(h) for h in got] == [[5], [2, 3]]


def _lists(users, jump=0):
  """Session examples of users who watch items in id order: each of the
  last positions of a 10-item timeline, with its history; with `jump` the
  label skips that many items ahead (retrieval misses it)."""
  examples = []
  for u in users:
    seq = [ITEMS[(u + i) % len(ITEMS)] for i in range(10)]
    for end in range(6, 10):
      label = ITEMS[(u + end + jump) % len(ITEMS)]
      examples.append(example(seq[max(0, end - CONTEXT):end], label,
                              history=seq[:end], user=str(u).encode()))
  return examples


@pytest.fixture(scope="module")
def trained(retrieval_export, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("ranker")
  sessions = sessions_artifact(str(tmp / "sessions"), {
      split: serialized_examples(retrieval_export, examples)
      for split, examples in (
          (F.RANKER_TRAIN, _lists(range(30))),
          (F.EVAL, _lists(range(30, 40))),
          (F.TEST, _lists(range(40, 45)) + _lists(range(45, 48), jump=12)))})
  model = standard_artifacts.Model()
  model.uri = retrieval_export["model_uri"]
  candidates = standard_artifacts.Examples()
  candidates.uri = str(tmp / "candidates")
  candidate_gen.Executor().Do(
      {"examples": [sessions], "model": [model], "holdout_model": [model]},
      {"candidates": [candidates]},
      {candidate_gen.CANDIDATES_PER_EXAMPLE: CANDIDATES})
  step = ranker_trainer.RankerTrainerSettings(
      features=FEATURES,
      session=settings.SessionConfig(max_context_length=CONTEXT),
      ranker=settings.RankerModelConfig(candidates=CANDIDATES, neighbors=4,
                                   recent_windows=[1, 3], hidden_units=[8],
                                   epochs=3, quantization="none"),
      train=settings.SeedConfig())
  serving = str(tmp / "model" / "Format-Serving")
  fn_args = tfx.components.FnArgs(
      train_files=[os.path.join(artifact_utils.get_split_uri(
          [candidates], F.RANKER_TRAIN), "*")],
      eval_files=[os.path.join(artifact_utils.get_split_uri(
          [candidates], F.EVAL), "*")],
      transform_graph_path=retrieval_export["tft_output"]._transform_output_dir,  # pylint: disable=protected-access
      serving_model_dir=serving, model_run_dir=str(tmp / "model_run"),
      base_model=retrieval_export["saved_model_path"],
      custom_config=step.to_dict())
  ranker_trainer.run_fn(fn_args)
  return {"serving": serving, "candidates": candidates,
          "retrieval": retrieval_export}


def test_run_fn_trains_on_the_ranker_lists(trained):
  model_dir = os.path.dirname(trained["serving"])
  with open(os.path.join(model_dir, layout.TRAINING_SUMMARY)) as f:
    summary = json.load(f)
  # 30 users x 4 lists; eval stops early on the chain's NDCG@10.
  assert summary["train_lists"] == 120
  assert 0 < summary["train_lists_with_label"] <= 120
  assert 1 <= summary["epochs"] <= 3
  assert 0.0 <= summary[f"best_{ranker_trainer.MONITOR}"] <= 1.0


def test_the_file_scores_the_candidates_as_the_saved_model(trained):
  tflite_dir = os.path.join(os.path.dirname(trained["serving"]),
                            layout.TFLITE_DIR)
  loaded = tf.saved_model.load(os.path.join(tflite_dir,
                                            layout.ONDEVICE_SAVED_MODEL))
  path = os.path.join(tflite_dir, layout.TFLITE_MODEL)
  runner = tf.lite.Interpreter(model_path=path).get_signature_runner(RANK)
  lists = ranker_trainer.read_lists(
      [os.path.join(artifact_utils.get_split_uri(
          [trained["candidates"]], F.TEST), "*")],
      trained["retrieval"]["tft_output"], FEATURES, CANDIDATES)
  inputs = ranker_trainer.model_inputs(lists, FEATURES)
  for row in range(3):
    one = {name: values[row:row + 1].astype(
        np.float32 if name == F.CANDIDATE_SCORE else np.int32)
           for name, values in inputs.items()}
    want = loaded.signatures[RANK](**one)[SCORES].numpy()[0]
    np.testing.assert_allclose(runner(**one)[SCORES][0], want, rtol=1e-5,
                               atol=1e-5)


def test_the_chain_ranks_as_the_protocol_says(trained):
  """The chain's `evaluate` (what TFMA ranks): a target among retrieval's
  candidates ranks where the ranker puts it among them, ties against
  it; a target outside them keeps its retrieval rank."""
  chain = tf.saved_model.load(trained["serving"])
  ranker = tf.saved_model.load(os.path.join(
      os.path.dirname(trained["serving"]), layout.TFLITE_DIR,
      layout.ONDEVICE_SAVED_MODEL))
  files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri(
      [trained["candidates"]], F.TEST), "*"))
  records = list(tf.data.TFRecordDataset(
      files, compression_type="GZIP").as_numpy_iterator())
  lists = ranker_trainer.read_lists(files, trained["retrieval"]["tft_output"],
                                    FEATURES, CANDIDATES)
  inputs = ranker_trainer.model_inputs(lists, FEATURES)
  positions = ranker_trainer.label_positions(
      lists[F.CANDIDATE_ITEM_INDEX], lists[F.LABEL_ITEM_ID])
  scores = chain.signatures["evaluate"](
      examples=tf.constant(records))[SCORES].numpy()
  labels = chain.signatures["transform_features"](
      examples=tf.constant(records))[F.LABEL_ITEM_ID].numpy().reshape(-1)
  outside = 0
  for row, record in enumerate(records):
    got = target_rank(scores[row], int(labels[row]))
    if positions[row] >= 0:
      one = {name: values[row:row + 1].astype(
          np.float32 if name == F.CANDIDATE_SCORE else np.int32)
             for name, values in inputs.items()}
      ranked = ranker.signatures[RANK](**one)[SCORES].numpy()[0]
      assert got == target_rank(ranked, int(positions[row]))
    else:
      outside += 1
      (retrieval_rank,) = tf.train.Example.FromString(
          record).features.feature[F.LABEL_RETRIEVAL_RANK].int64_list.value
      assert got == retrieval_rank >= CANDIDATES
    # The history stays excluded.
    assert (scores[row][lists[F.HISTORY_ITEM_ID][row]] <=
            EXCLUDED_SCORE).all()
  assert 0 < outside < len(records)
