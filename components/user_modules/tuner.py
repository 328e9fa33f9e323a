"""Tuner module: `tuner_fn` for TFX's Tuner, a search over the retrieval
model's hyperparameters on the eval split.

KerasTuner's random search over the learning rate, the dropout, the width
of the item embeddings, the depth of the context encoder and (attention,
bag-of-words) the context length it reads; the first trial is the settings
as given, so the best is never worse on the eval split than no tuning.
Every trial trains the model the Trainer would (trainer.build_model, the
same in-memory datasets) with early stopping on the eval NDCG@10, at most
`tuner.max_minutes / tuner.trials` minutes; no trial starts once
`tuner.max_minutes` are spent. TFX writes the best values
(`best_hyperparameters`, which the Trainer applies: hyperparameters.py) and every
trial's score and values (`tuner_results`), both recorded in ML Metadata.

A random search rather than Bayesian optimization: with the few trials a
2-core machine affords, KerasTuner's Bayesian oracle would still be drawing
its random initial points.
"""
import dataclasses
import time

import keras_tuner
from tfx import v1 as tfx

from components.lib import settings
from components.user_modules import hyperparameters
from components.user_modules import trainer


@dataclasses.dataclass(frozen=True)
class TunerSettings(trainer.TrainerSettings):
  """What the Tuner reads: the Trainer's settings and its own."""
  tuner: settings.TunerConfig


class _Oracle(keras_tuner.oracles.RandomSearchOracle):
  """Random search whose first trial is the defaults, stopping when the
  search's time is spent."""

  def __init__(self, deadline: float, **kwargs):
    super().__init__(**kwargs)
    self.deadline = deadline

  def populate_space(self, trial_id):
    if time.monotonic() >= self.deadline:
      return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED}
    if not self.trials or list(self.trials) == [trial_id]:
      return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING,
              "values": self.hyperparameters.values}
    return super().populate_space(trial_id)


class _Search(keras_tuner.engine.base_tuner.BaseTuner):
  """Trains the retrieval model per trial; the score is the best eval
  NDCG@10 of its epochs."""

  def __init__(self, step: TunerSettings, tft_output, **kwargs):
    super().__init__(**kwargs)
    self.step, self.tft_output = step, tft_output

  def run_trial(self, trial, train, evaluation):
    step = hyperparameters.apply(self.step, trial.hyperparameters.values)
    model = trainer.build_model(step, self.tft_output)
    _, keep_best, _ = trainer.fit(step, model, train, evaluation,
                                  self.step.tuner.trial_minutes,
                                  self.get_trial_dir(trial.trial_id))
    return {trainer.MONITOR: keep_best.best}

  def save_model(self, trial_id, model, step=0):
    """Trials keep no model: the Trainer trains the best settings again."""


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  step = TunerSettings.parse(fn_args.custom_config)
  started = time.monotonic()
  tft_output, train, evaluation = trainer.datasets(step, fn_args)
  oracle = _Oracle(
      deadline=started + step.tuner.max_minutes * 60.0,
      objective=keras_tuner.Objective(trainer.MONITOR, "max"),
      max_trials=step.tuner.trials, seed=step.train.seed,
      hyperparameters=hyperparameters.search_space(step),
      allow_new_entries=False,
      tune_new_entries=False)
  search = _Search(step, tft_output, oracle=oracle,
                   directory=fn_args.working_dir, project_name="search",
                   overwrite=True)
  return tfx.components.TunerFnResult(
      tuner=search, fit_kwargs={"train": train, "evaluation": evaluation})
