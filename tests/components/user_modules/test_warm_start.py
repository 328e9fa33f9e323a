"""Warm start: an item's learned embedding follows its id into a vocabulary
that moved (reordered, grown, shrunk), new items keep their fresh rows, the
other weights carry over, and a model of another shape is left alone."""
import dataclasses

import numpy as np
import tf_keras as keras

from components.lib import features as F
from components.lib.settings import ModelConfig
from components.model.dual_encoder import DualEncoder
from components.user_modules import warm_start
from tests.support.sessions import GENRE_SLOTS, feature_config

LENGTH = 4
MODEL = ModelConfig(encoder="attention", dropout=0.0, attention_units=8,
                    attention_layers=1, attention_heads=1)
GENRES = [b"Drama", b"Comedy"]


def _model(items, seed, item_dim=8):
  keras.utils.set_random_seed(seed)
  model = DualEncoder(feature_config(item_dim=item_dim), {
      "item_id": len(items) + F.NUM_RESERVED_IDS,
      "genre": len(GENRES) + F.NUM_RESERVED_IDS, "user_gender": 4}, LENGTH,
      MODEL)
  features = {
      F.CONTEXT_ITEM_ID: np.array([[2, 3, 0, 0]]),
      F.CONTEXT_RATING: np.array([[5, 5, 0, 0]]),
      F.CONTEXT_YEAR: np.array([[9, 9, 0, 0]]),
      F.CONTEXT_GENRE: np.full((1, LENGTH * GENRE_SLOTS), 2),
      F.USER_GENDER: np.array([[2]]), F.USER_AGE: np.array([[3]])}
  model.encode_positions(features)
  model(features)
  return model


def _row(model, vocabulary, item):
  table = model.label_encoder.embedding.embeddings.numpy()
  return table[vocabulary.index(item) + F.NUM_RESERVED_IDS]


def test_an_items_embedding_follows_its_id_into_a_new_vocabulary(tmp_path):
  old_items = [b"a", b"b", b"c", b"d"]
  new_items = [b"c", b"e", b"a", b"d"]  # reordered; b left, e new
  base = _model(old_items, seed=1)
  warm_start.save(str(tmp_path), base, {"item_id": old_items,
                                        "genre": GENRES,
                                        "user_gender": [b"F", b"M"]})
  model = _model(new_items, seed=2)
  fresh = _row(model, new_items, b"e")

  result = warm_start.warm_start(model, str(tmp_path), {
      "item_id": new_items, "genre": GENRES, "user_gender": [b"M", b"F"]})

  assert "skipped" not in result, result
  assert result["vocabularies"]["item_id"] == {
      "carried_over": 3, "new": 1, "left_out": 1}
  for item in (b"a", b"c", b"d"):
    np.testing.assert_array_equal(_row(model, new_items, item),
                                  _row(base, old_items, item))
  np.testing.assert_array_equal(_row(model, new_items, b"e"), fresh)
  # The user gender table follows its (swapped) entries as well.
  genders = model.static_embeddings[0].embeddings[F.USER_GENDER]
  base_genders = base.static_embeddings[0].embeddings[F.USER_GENDER]
  np.testing.assert_array_equal(genders.embeddings.numpy()[[2, 3]],
                                base_genders.embeddings.numpy()[[3, 2]])
  # Weights indexed by no vocabulary (the encoder's) carry over as they are.
  np.testing.assert_array_equal(model.projection.kernel.numpy(),
                                base.projection.kernel.numpy())
  tables = model.vocabulary_tables()
  assert sorted(tables.values()) == ["genre", "item_id", "user_gender"]


def test_a_model_of_another_shape_keeps_its_fresh_weights(tmp_path):
  items = [b"a", b"b"]
  base = _model(items, seed=1)
  vocabularies = {"item_id": items, "genre": GENRES,
                  "user_gender": [b"F", b"M"]}
  warm_start.save(str(tmp_path), base, vocabularies)
  wider = _model(items, seed=2, item_dim=16)
  before = [w.numpy() for w in wider.weights]

  result = warm_start.warm_start(wider, str(tmp_path), vocabularies)

  assert "in the base model" in result["skipped"], result
  for old, new in zip(before, wider.weights):
    np.testing.assert_array_equal(old, new.numpy())
  empty = warm_start.warm_start(wider, str(tmp_path / "none"), vocabularies)
  assert empty["skipped"] == "the base model saved no weights to start from"
