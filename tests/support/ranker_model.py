"""A small next-item ranker over the support retrieval model's candidates,
trained once by the ranker's run_fn, for the tests of its Trainer, its
files and its push: laid out as the Trainer lays out its Model artifact."""
import os

from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.candidate_gen import executor as candidate_gen
from components.lib import features as F
from components.lib import settings
from components.user_modules import ranker_trainer
from tests.support.retrieval_model import (CONTEXT, FEATURES, ITEMS, example,
                                           serialized_examples)
from tests.support.session_artifacts import sessions_artifact

# Retrieval's top 3: some test labels (those that jump ahead) fall outside.
CANDIDATES = 3


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


def train(retrieval_export, tmp) -> dict:
  """Candidates of the retrieval model (support/retrieval_model.py) and the
  ranker trained on them under `tmp` (a pathlib.Path): {"serving": its
  Format-Serving dir, "model_uri", "candidates": CandidateGen's artifact,
  "sessions": the session examples' artifact, "retrieval":
  retrieval_export}."""
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
      ranker=settings.RankerModelConfig(candidates=CANDIDATES, successors=4,
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
  return {"serving": serving, "model_uri": os.path.dirname(serving),
          "candidates": candidates, "sessions": sessions,
          "retrieval": retrieval_export}
