"""ForwardEvaluator evaluates only a model from before the forward span: the
checks that keep a model off its own training labels, and the status it
records when it evaluates nothing."""
import json
import os

import pytest
from tfx.types import standard_artifacts

from components.forward_evaluator import executor
from components.lib import layout


def _sessions(tmp_path, forward_span=None, forward_examples=0):
  sessions = standard_artifacts.Examples()
  sessions.uri = str(tmp_path / "sessions")
  if forward_span is not None:
    sessions.set_int_custom_property(executor.SESSIONS_FORWARD_SPAN,
                                     forward_span)
  sessions.set_int_custom_property(executor.SESSIONS_FORWARD_EXAMPLES,
                                   forward_examples)
  return sessions


def _model(tmp_path, trained_through_span=None):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "model")
  os.makedirs(model.uri)
  summary = {"epochs": 3}
  if trained_through_span is not None:
    summary[layout.TRAINED_THROUGH_SPAN] = trained_through_span
  with open(os.path.join(model.uri, layout.TRAINING_SUMMARY), "w") as f:
    json.dump(summary, f)
  return model


@pytest.mark.parametrize("forward_span,examples,trained,reason", [
    (None, 0, 1, "one span"),
    (3, 10, None, "does not record"),
    (3, 10, 3, "trained on spans up to 3: span 3 is not ahead"),
    (3, 10, 4, "trained on spans up to 4"),
    (3, 0, 2, "no user of span 3 has an interaction before it"),
])
def test_a_model_not_from_before_the_span_is_not_evaluated(
    tmp_path, forward_span, examples, trained, reason):
  found = executor.skip_reason(_sessions(tmp_path, forward_span, examples),
                               _model(tmp_path, trained))
  assert reason in found


def test_a_model_from_before_the_span_is_evaluated(tmp_path):
  assert executor.skip_reason(_sessions(tmp_path, 3, 10),
                              _model(tmp_path, 2)) is None


def test_without_a_blessed_model_the_status_says_so(tmp_path):
  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = str(tmp_path / "evaluation")
  os.makedirs(evaluation.uri)
  executor.Executor().Do({"examples": [_sessions(tmp_path, 2, 5)]},
                         {"evaluation": [evaluation]}, {})
  with open(os.path.join(evaluation.uri, layout.FORWARD_STATUS)) as f:
    status = json.load(f)
  assert status["status"] == "no model was blessed before span 2"
  assert status["span"] == 2 and status["examples"] == 5
  assert evaluation.get_int_custom_property(executor.SPAN) == 2
  assert evaluation.get_string_custom_property(executor.STATUS) == (
      status["status"])
