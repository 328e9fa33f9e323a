"""The executor of ForwardEvaluator: TFX's Evaluator on the forward split,
once it has checked that the model is one from before that split's span.

Sessionize writes the forward split when it reads several spans: each
user's first interaction in the newest span N, with the history before it.
The figure that says how a pushed model does on the next period is the
model blessed before span N arrived, ranked on those targets. The latest
blessed model that this run's resolver finds is that model only when it was
trained on spans before N: a rerun over the same spans finds a model that
was trained on span N, and its "forward" ranks would be on its own training
labels. The Trainer records the newest span it read (training summary); a
model without one, or from span N on, is not evaluated, and the status says
why. Everything else is TFX's Evaluator (TFMA, the same ranking metrics as
the test split's, most-popular beside the model).
"""
import json
import os
from typing import Any, Dict, List, Optional

from absl import logging
import tensorflow as tf
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import json_utils

from components.lib import features as F
from components.lib import layout

# Custom properties of the evaluation: the span evaluated and what happened.
SPAN = "forward_span"
STATUS = "forward_status"
EVALUATED = "evaluated"
# Sessionize's custom properties on the sessions it wrote.
SESSIONS_FORWARD_SPAN = "forward_span"
SESSIONS_FORWARD_EXAMPLES = "forward_examples"


def model_span(model) -> Optional[int]:
  """The newest span a Model (a TFX artifact, or its MLMD record) was
  trained on (None: not recorded)."""
  path = os.path.join(model.uri, layout.TRAINING_SUMMARY)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.loads(f.read()).get(layout.TRAINED_THROUGH_SPAN)


def _int_property(artifact: types.Artifact, name: str) -> Optional[int]:
  if artifact.has_custom_property(name):
    return artifact.get_int_custom_property(name)
  return None


def skip_reason(sessions: types.Artifact,
                model: Optional[types.Artifact]) -> Optional[str]:
  """Why the forward split is not evaluated (None: it is)."""
  span = _int_property(sessions, SESSIONS_FORWARD_SPAN)
  if span is None:
    return "the sessions hold one span: nothing to evaluate forward"
  if model is None:
    return f"no model was blessed before span {span}"
  trained = model_span(model)
  if trained is None:
    return ("the latest blessed model does not record the spans it was "
            "trained on")
  if trained >= span:
    return (f"the latest blessed model was trained on spans up to {trained}: "
            f"span {span} is not ahead of it")
  if not _int_property(sessions, SESSIONS_FORWARD_EXAMPLES):
    return f"no user of span {span} has an interaction before it"
  return None


class Executor(evaluator_executor.Executor):
  """TFX's Evaluator on the forward split, when there is a model to
  evaluate forward (see the module docstring)."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    sessions = artifact_utils.get_single_instance(input_dict[specs.EXAMPLES_KEY])
    models = input_dict.get(specs.MODEL_KEY) or []
    model = models[0] if models else None
    evaluation = artifact_utils.get_single_instance(
        output_dict[specs.EVALUATION_KEY])
    span = _int_property(sessions, SESSIONS_FORWARD_SPAN)
    reason = skip_reason(sessions, model)
    status = {"span": span, "status": reason or EVALUATED,
              "model_uri": model.uri if model else None,
              "model_trained_through_span": model_span(model) if model else None,
              "examples": _int_property(sessions, SESSIONS_FORWARD_EXAMPLES)}
    if reason is None:
      super().Do(
          {specs.EXAMPLES_KEY: [sessions], specs.MODEL_KEY: [model]},
          {specs.EVALUATION_KEY: [evaluation]},
          {**exec_properties,
           specs.EXAMPLE_SPLITS_KEY: json_utils.dumps([F.FORWARD])})
    else:
      logging.info("Forward evaluation skipped: %s", reason)
    if span is not None:
      evaluation.set_int_custom_property(SPAN, span)
    evaluation.set_string_custom_property(STATUS, status["status"])
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, layout.FORWARD_STATUS),
                           "w") as f:
      f.write(json.dumps(status, indent=2))
