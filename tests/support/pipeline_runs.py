"""The pipeline runs the end-to-end tests share (tests/conftest.py runs each
once per session), and readers of their artifacts."""
import dataclasses
import os
import tempfile
from typing import Any, Dict, List, Set, Tuple

import numpy as np
import pytest
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor

from pipeline import PROJECT_ROOT
from pipeline.config import RunConfig, load_config
from pipeline.runners import local

SAMPLE = os.path.join(PROJECT_ROOT, "data", "sample")
ALICCP_SAMPLE = os.path.join(PROJECT_ROOT, "data", "aliccp-sample")
RETRIEVAL_COMPONENTS = [
    "ImportSchemaGen", "MovieLensExampleGen", "StatisticsGen",
    "ExampleValidator", "Sessionize", "Transform", "Trainer",
    "latest_blessed_model", "Evaluator", "TFLitePusher", "forward_evaluator"]
RANKER_COMPONENTS = ["candidate_trainer", "candidate_gen", "ranker_trainer",
                     "ranker_evaluator", "ranker_pusher"]
COMPONENTS = RETRIEVAL_COMPONENTS + RANKER_COMPONENTS + [
    "rating_trainer", "latest_blessed_rating_model", "rating_evaluator",
    "rating_pusher", "two_stage_evaluator"]
RESOLVERS = {"latest_blessed_model", "latest_blessed_rating_model"}
# What a re-run with the same config executes again: the resolvers, which
# now find the first run's blessed models, and what depends on them (the
# forward evaluation finds the sample is one span, and says so; the
# ranker's Pusher gets the retrieval Pusher's new output, which finds the
# model pushed already).
RERUN = RESOLVERS | {"Evaluator", "TFLitePusher", "rating_evaluator",
                     "rating_pusher", "forward_evaluator", "ranker_pusher"}
BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
# The executors that run a Beam job, and so must get BEAM_ARGS.
BEAM_EXECUTORS = {
    "components.example_gen.movielens.executor.Executor",
    "tfx.components.statistics_gen.executor.Executor",
    "components.sessionize.executor.Executor",
    "tfx.components.transform.executor.Executor",
    "tfx.components.evaluator.executor.Executor",
}


@dataclasses.dataclass
class SampleRuns:
  """Three runs of the sample in one output directory: the first, the same
  again, and the same on the other runner (`runner` alone changed)."""
  config: RunConfig
  first: Dict[str, Any]
  second: Dict[str, Any]
  other_runner: Dict[str, Any]


def run_sample(output_dir: str) -> SampleRuns:
  config = load_config(values={"data": {"data_dir": SAMPLE},
                               "output_dir": output_dir,
                               "train": {"epochs": 6},
                               "ranking": {"epochs": 6}})
  first = local.run(config)
  second = local.run(config)
  other_runner = local.run(dataclasses.replace(config, runner="beam"))
  return SampleRuns(config, first, second, other_runner)


@dataclasses.dataclass
class BeamRun:
  config: RunConfig
  summary: Dict[str, Any]
  # (executor class, the Beam arguments it made its pipeline with)
  beam_args: List[Tuple[str, List[str]]]
  # What the run added to the temp directory and left there.
  left_in_tempdir: Set[str]


def run_sample_on_beam(output_dir: str) -> BeamRun:
  """The sample on BeamDagRunner with two Beam workers, without the
  ranker and the rating stage (they add no Beam job of their own kind)."""
  config = load_config(values={"data": {"data_dir": SAMPLE},
                               "output_dir": output_dir,
                               "train": {"epochs": 6}, "runner": "beam",
                               "beam_args": BEAM_ARGS,
                               "ranker": {"enabled": False},
                               "ranking": {"enabled": False}})
  made = []
  make = base_beam_executor.BaseBeamExecutor._make_beam_pipeline  # pylint: disable=protected-access

  def recording(executor):
    kind = type(executor)
    made.append((f"{kind.__module__}.{kind.__name__}",
                 list(executor._beam_pipeline_args)))  # pylint: disable=protected-access
    return make(executor)

  before = set(os.listdir(tempfile.gettempdir()))
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(base_beam_executor.BaseBeamExecutor, "_make_beam_pipeline",
                  recording)
    summary = local.run(config)
  return BeamRun(config, summary, made,
                 set(os.listdir(tempfile.gettempdir())) - before)


def run_aliccp_sample(output_dir: str):
  config = load_config(values={
      "data": {"dataset": "aliccp", "data_dir": ALICCP_SAMPLE,
               # Small buckets: the join and the grouping go through disk.
               "group_bucket_bytes": 1_000_000},
      # Eight epochs reach eval HR@10 0.15 (popularity: below 0.05).
      "train": {"epochs": 8},
      # The Tuner with two short trials before the Trainer.
      "tuner": {"enabled": True, "trials": 2, "max_minutes": 2.0},
      "output_dir": output_dir})
  return config, local.run(config)


def split_records_dir(config: RunConfig) -> str:
  """The test split of a run's sessions artifact."""
  root = os.path.join(config.pipeline_root, "Sessionize", "sessions")
  (sessions_dir,) = [os.path.join(root, d) for d in os.listdir(root)]
  return os.path.join(sessions_dir, "Split-test")


def split_records(config: RunConfig) -> tf.data.Dataset:
  """The serialized test-split session examples of a run."""
  return tf.data.TFRecordDataset(
      tf.io.gfile.glob(os.path.join(split_records_dir(config), "*")),
      compression_type="GZIP")


def split_examples(config: RunConfig, limit: int = 60
                   ) -> List[Dict[str, list]]:
  """Test-split session examples: {feature name: list of values}."""
  examples = []
  for record in split_records(config).take(limit):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    examples.append({
        name: [v.decode() if isinstance(v, bytes) else v
               for v in getattr(f, f.WhichOneof("kind")).value]
        for name, f in feature.items()})
  return examples


def assert_same_top(ids, scores, want_ids, want_scores, rtol: float = 5e-3):
  """A float16 file's top list against the SavedModel's: the same scores
  rank by rank, and the same items but where the SavedModel scored two
  within float16's precision (they may swap) or an item at the list's end
  within it of the last one (it may trade places with one outside)."""
  want_ids, want_scores = list(want_ids), list(want_scores)
  n = len(want_ids)
  np.testing.assert_allclose(scores[:n], want_scores, rtol=rtol, atol=rtol)

  def close(a, b):
    return abs(a - b) <= rtol * max(1.0, abs(b))
  for k, item in enumerate(ids[:n]):
    if item == want_ids[k]:
      continue
    if item in want_ids:
      assert close(want_scores[want_ids.index(item)], want_scores[k]), (
          k, ids[:n], want_ids)
    else:
      assert close(scores[k], want_scores[-1]), (k, ids[:n], want_ids)
