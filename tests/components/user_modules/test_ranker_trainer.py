"""The ranker's Trainer: label positions, the transition histories, and
run_fn on CandidateGen's lists of a small retrieval model (the Model
artifact's SavedModel and TFLite file score alike)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils

from components.lib import features as F
from components.lib import layout
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export.signature_names import RANK, SCORES
from components.user_modules import ranker_trainer
from components.user_modules.evaluation import target_rank
from tests.support.ranker_model import CANDIDATES
from tests.support.retrieval_model import FEATURES

P = F.PAD_ID


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


def test_run_fn_trains_on_the_ranker_lists(ranker_export):
  model_dir = os.path.dirname(ranker_export["serving"])
  with open(os.path.join(model_dir, layout.TRAINING_SUMMARY)) as f:
    summary = json.load(f)
  # 30 users x 4 lists; eval stops early on the chain's NDCG@10.
  assert summary["train_lists"] == 120
  assert 0 < summary["train_lists_with_label"] <= 120
  assert 1 <= summary["epochs"] <= 3
  assert 0.0 <= summary[f"best_{ranker_trainer.MONITOR}"] <= 1.0


def test_the_file_scores_the_candidates_as_the_saved_model(ranker_export):
  tflite_dir = os.path.join(os.path.dirname(ranker_export["serving"]),
                            layout.TFLITE_DIR)
  loaded = tf.saved_model.load(os.path.join(tflite_dir,
                                            layout.ONDEVICE_SAVED_MODEL))
  path = os.path.join(tflite_dir, layout.TFLITE_MODEL)
  runner = tf.lite.Interpreter(model_path=path).get_signature_runner(RANK)
  lists = ranker_trainer.read_lists(
      [os.path.join(artifact_utils.get_split_uri(
          [ranker_export["candidates"]], F.TEST), "*")],
      ranker_export["retrieval"]["tft_output"], FEATURES, CANDIDATES)
  inputs = ranker_trainer.model_inputs(lists, FEATURES)
  for row in range(3):
    one = {name: values[row:row + 1].astype(
        np.float32 if name == F.CANDIDATE_SCORE else np.int32)
           for name, values in inputs.items()}
    want = loaded.signatures[RANK](**one)[SCORES].numpy()[0]
    np.testing.assert_allclose(runner(**one)[SCORES][0], want, rtol=1e-5,
                               atol=1e-5)


def test_the_chain_ranks_as_the_protocol_says(ranker_export):
  """The chain's `evaluate` (what TFMA ranks): a target among retrieval's
  candidates ranks where the ranker puts it among them, ties against
  it; a target outside them keeps its retrieval rank."""
  chain = tf.saved_model.load(ranker_export["serving"])
  ranker = tf.saved_model.load(os.path.join(
      os.path.dirname(ranker_export["serving"]), layout.TFLITE_DIR,
      layout.ONDEVICE_SAVED_MODEL))
  files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri(
      [ranker_export["candidates"]], F.TEST), "*"))
  records = list(tf.data.TFRecordDataset(
      files, compression_type="GZIP").as_numpy_iterator())
  lists = ranker_trainer.read_lists(files, ranker_export["retrieval"]["tft_output"],
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
