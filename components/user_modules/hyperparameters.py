"""The hyperparameters the Tuner searches (tuner.py) and the Trainer applies
(trainer.py): each one's range, defaulting to the run's own setting.

The learning rate, the dropout, the width of the item embeddings, the depth
of the context encoder and, for the encoders that read a window of the
context (attention, bag-of-words), the context length.
"""
import dataclasses
from typing import Any, Dict, TypeVar

import keras_tuner

from components.lib import feature_config as fc

# A step's settings with features, session, model and train sections (the
# Trainer's, the Tuner's).
Step = TypeVar("Step")

LEARNING_RATE = "learning_rate"
DROPOUT = "dropout"
EMBEDDING_DIM = "embedding_dim"
LAYERS = "layers"
CONTEXT_LENGTH = "context_length"
# The depth setting of each encoder (bag-of-words has none).
_LAYER_SETTINGS = {"cnn": "cnn_layers", "lstm": "rnn_layers",
                   "gru": "rnn_layers", "attention": "attention_layers"}
_WINDOWED = ("attention", "bow")
EMBEDDING_DIMS = (32, 48, 64, 96, 128)


def _encoder(step: Step) -> str:
  (sequence,) = [g for g in step.features.groups if g.kind == fc.SEQUENCE]
  return sequence.encoder or step.model.encoder


def search_space(step: Step) -> keras_tuner.HyperParameters:
  """The hyperparameters, each defaulting to the step's own setting."""
  hp = keras_tuner.HyperParameters()
  hp.Float(LEARNING_RATE, 2e-4, 5e-3, sampling="log",
           default=min(max(step.train.learning_rate, 2e-4), 5e-3))
  hp.Float(DROPOUT, 0.0, 0.5, step=0.1, default=step.model.dropout)
  width = step.features.label.embedding_dim
  hp.Choice(EMBEDDING_DIM, sorted(set(EMBEDDING_DIMS) | {width}),
            default=width)
  encoder = _encoder(step)
  if encoder in _LAYER_SETTINGS:
    hp.Int(LAYERS, 1, 3,
           default=getattr(step.model, _LAYER_SETTINGS[encoder]))
  if encoder in _WINDOWED:
    longest = step.session.max_context_length
    lengths = sorted({max(1, longest // 4), max(1, longest // 2), longest})
    hp.Choice(CONTEXT_LENGTH, lengths,
              default=step.model.context_window or longest)
  return hp


def apply(step: Step, values: Dict[str, Any]) -> Step:
  """`step` with hyperparameter `values` in place."""
  model = dataclasses.replace(step.model)
  train = dataclasses.replace(step.train)
  features = step.features
  if LEARNING_RATE in values:
    train.learning_rate = float(values[LEARNING_RATE])
  if DROPOUT in values:
    model.dropout = float(values[DROPOUT])
  if EMBEDDING_DIM in values:
    features = features.with_item_embedding_dim(int(values[EMBEDDING_DIM]))
  encoder = _encoder(step)
  if LAYERS in values and encoder in _LAYER_SETTINGS:
    setattr(model, _LAYER_SETTINGS[encoder], int(values[LAYERS]))
  if CONTEXT_LENGTH in values:
    length = int(values[CONTEXT_LENGTH])
    model.context_window = (
        0 if length >= step.session.max_context_length else length)
  return dataclasses.replace(step, features=features, model=model,
                             train=train)
