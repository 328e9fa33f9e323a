"""The Tuner's search space (each hyperparameter defaulting to the run's own
setting) and its values applied to the Trainer's settings."""
import pytest

from components.lib import features as F
from components.lib import settings
from components.user_modules import hyperparameters as H
from components.user_modules.trainer import TrainerSettings
from tests.support.sessions import feature_config


def step(encoder="attention", **model):
  return TrainerSettings(
      features=feature_config(item_dim=16),
      session=settings.SessionConfig(max_context_length=200),
      model=settings.ModelConfig(encoder=encoder, **model),
      train=settings.TrainConfig(learning_rate=0.002),
      serving=settings.ServingConfig())


def test_the_defaults_are_the_settings_as_given():
  space = H.search_space(step(attention_layers=2, dropout=0.2))
  assert space.values == {H.LEARNING_RATE: 0.002, H.DROPOUT: 0.2,
                          H.EMBEDDING_DIM: 16, H.LAYERS: 2,
                          H.CONTEXT_LENGTH: 200}
  (lengths,) = [h for h in space.space if h.name == H.CONTEXT_LENGTH]
  assert sorted(lengths.values) == [50, 100, 200]
  # Applying the defaults changes nothing.
  given = step(attention_layers=2, dropout=0.2)
  assert H.apply(given, space.values) == given


@pytest.mark.parametrize("encoder, names", [
    ("bow", {H.LEARNING_RATE, H.DROPOUT, H.EMBEDDING_DIM, H.CONTEXT_LENGTH}),
    ("gru", {H.LEARNING_RATE, H.DROPOUT, H.EMBEDDING_DIM, H.LAYERS}),
    ("cnn", {H.LEARNING_RATE, H.DROPOUT, H.EMBEDDING_DIM, H.LAYERS})])
def test_each_encoder_is_searched_over_what_it_has(encoder, names):
  assert set(H.search_space(step(encoder)).values) == names


def test_values_land_in_the_settings_the_model_reads():
  tuned = H.apply(step("gru"), {H.LEARNING_RATE: 0.0005, H.DROPOUT: 0.4,
                                H.EMBEDDING_DIM: 48, H.LAYERS: 3})
  assert tuned.train.learning_rate == 0.0005
  assert tuned.model.dropout == 0.4 and tuned.model.rnn_layers == 3
  # Every item embedding (the label's, the context's item ids) is resized
  # together: they share one table.
  item_features = [f for f in tuned.features.all_features()
                   if f.vocabulary == tuned.features.label.vocabulary]
  assert {f.embedding_dim for f in item_features} == {48}
  assert [f.name for f in item_features] == [F.CONTEXT_ITEM_ID,
                                             F.LABEL_ITEM_ID]
  others = {f.name: f.embedding_dim for f in tuned.features.all_features()
            if f not in item_features}
  assert others == {f.name: f.embedding_dim
                    for f in step().features.all_features()
                    if f.vocabulary != "item_id"}
  windowed = H.apply(step(), {H.CONTEXT_LENGTH: 50})
  assert windowed.model.context_window == 50
  assert H.apply(step(context_window=50), {H.CONTEXT_LENGTH: 200}
                 ).model.context_window == 0
  # The given settings are left as they were.
  given = step("gru")
  before = (given.model.rnn_layers, given.model.dropout)
  H.apply(given, {H.LAYERS: 3, H.DROPOUT: 0.4})
  assert (given.model.rnn_layers, given.model.dropout) == before != (3, 0.4)
