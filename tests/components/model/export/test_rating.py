"""The rating model's SavedModel: it learns a taste the means cannot see,
serving on raw ids agrees with evaluate and rate_candidates, unrated items
count as the train mean, and the TFLite file agrees call after call."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import features as F
from components.lib.settings import RatingModelConfig
from components.model.export import rating as rating_export
from components.model.export import signature_names as names
from components.model.export import tflite
from components.model.rating_model import RatingModel
from components.sessionize import sessions
from components.user_modules import rating_trainer
from tests.support.sessions import analyze_and_transform, custom_config
from tests.support.sessions import feature_config, session

MODEL = RatingModelConfig(embedding_dim=8, hidden_units=[16], dropout=0.0)
CONTEXT, CANDIDATES = 4, 12
ITEMS = [f"{200 + i}".encode() for i in range(24)]
FEATURES = feature_config(item_dim=8)
# Users like items by taste: even users rate even items 5 and odd ones 1.
TASTE = {u: u % 2 for u in range(40)}


def rating_of(user: int, item: bytes) -> float:
  return 5.0 if int(item) % 2 == TASTE[user] else 1.0


def rated_example(user: int, items, label):
  return session(label, items, ratings=[rating_of(user, i) for i in items],
                 years=[1980 + int(i) % 7 for i in items],
                 genres=[[b"Drama" if int(i) % 3 else b"War"] for i in items],
                 user=str(user).encode(), label_rating=rating_of(user, label),
                 label_year=1980 + int(label) % 7,
                 label_genres=[b"Drama" if int(label) % 3 else b"War"],
                 gender=b"F" if user % 2 else b"M")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("rating")
  rng = np.random.default_rng(0)
  train, test = [], []
  for user in range(40):
    items = list(rng.choice(ITEMS, size=CONTEXT + 1, replace=False))
    train.append(rated_example(user, items[:-1], items[-1]))
    held = list(rng.choice(ITEMS, size=CONTEXT + 1, replace=False))
    test.append(rated_example(user, held[:-1], held[-1]))
  transformed, (transformed_test,), tft_output = analyze_and_transform(
      train, [test], custom_config(FEATURES, CONTEXT), str(tmp))
  attributes = FEATURES.item_attributes()
  arrays = {k: np.stack([np.asarray(r[k]) for r in transformed])
            for k in rating_trainer.train_feature_names(FEATURES)}
  num_items = tft_output.vocabulary_size_by_name("item_id") + 2
  sizes = {name: tft_output.vocabulary_size_by_name(name) + 2
           for name in FEATURES.vocabularies()}
  mean, item_means = rating_trainer.rating_statistics(arrays, num_items)
  table = rating_trainer.attribute_table(arrays, attributes, num_items)
  keras.utils.set_random_seed(1)
  model = RatingModel(FEATURES, sizes, attributes, table, mean, MODEL)
  model.compile(optimizer=keras.optimizers.Adam(0.02))
  inputs = rating_trainer.model_inputs(arrays, FEATURES)
  model.fit(tf.data.Dataset.from_tensor_slices(
      (inputs, arrays[F.LABEL_RATING])).batch(8), epochs=30, verbose=0)
  path = str(tmp / "saved_model")
  rating_export.RatingExport(model, tft_output, FEATURES, CONTEXT, item_means,
                             mean, CANDIDATES).save(path)
  tflite_path = str(tmp / "model.tflite")
  with open(tflite_path, "wb") as f:
    f.write(tflite.convert(path))
  return {"saved_model": tf.saved_model.load(path), "tflite": tflite_path,
          "test": test, "transformed_test": transformed_test,
          "tft_output": tft_output, "mean": mean, "item_means": item_means}


def serialized(examples):
  """Session examples (TFT instance dicts) as the sessionizer writes them."""
  # pylint: disable=protected-access
  list_of = {name: sessions._KIND[spec.dtype]
             for name, spec in sessions.feature_spec().items()}
  return tf.constant([sessions._example(
      {k: v if isinstance(v, list) else [v] for k, v in e.items()},
      list_of).SerializeToString() for e in examples])


def test_model_learns_the_users_taste_and_beats_the_baselines(exported):
  out = exported["saved_model"].signatures["evaluate"](
      examples=serialized(exported["test"]))
  labels = np.array([e[F.LABEL_RATING][0] for e in exported["test"]])
  rmse = {name: float(np.sqrt(np.mean((out[name].numpy() - labels) ** 2)))
          for name in (names.RATING, names.GLOBAL_MEAN_RATING,
                       names.ITEM_MEAN_RATING)}
  # Ratings are 1 or 5 by taste, which only the history tells: the means
  # cannot know it (RMSE about 2), the model reads it from the context.
  assert rmse[names.GLOBAL_MEAN_RATING] > 1.5
  assert rmse[names.ITEM_MEAN_RATING] > 1.5
  assert rmse[names.RATING] < 1.0
  np.testing.assert_allclose(out[names.GLOBAL_MEAN_RATING],
                             exported["mean"])


def raw_serving_inputs(histories, ratings, candidates, genders):
  def pad(values, n, fill):
    values = list(values)[-n:]
    return values + [fill] * (n - len(values))
  return {
      F.CONTEXT_ITEM_ID: np.array([pad(h, CONTEXT, b"") for h in histories],
                                  dtype=object),
      F.CONTEXT_RATING: np.array([pad(r, CONTEXT, 0.0) for r in ratings],
                                 np.float32),
      names.CANDIDATE_ITEM_ID: np.array(
          [pad(c, CANDIDATES, b"") for c in candidates], dtype=object),
      F.USER_GENDER: np.array([[g] for g in genders], dtype=object),
      F.USER_AGE: np.array([[25]] * len(histories), np.int32),
  }


def test_serving_matches_evaluate_on_the_same_user(exported):
  """Raw ids in, ratings out, the same as the TFT path from examples."""
  (example,) = exported["test"][:1]
  candidates = [example[F.LABEL_ITEM_ID], ITEMS[0], ITEMS[1]]
  inputs = raw_serving_inputs([example[F.CONTEXT_ITEM_ID]],
                              [example[F.CONTEXT_RATING]], [candidates],
                              [example[F.USER_GENDER][0]])
  served = exported["saved_model"].signatures["serving_default"](
      **{k: tf.constant(v) for k, v in inputs.items()})[
          names.RATINGS].numpy()
  assert served.shape == (1, CANDIDATES)
  evaluated = exported["saved_model"].signatures["evaluate"](
      examples=serialized([example]))[names.RATING].numpy()
  np.testing.assert_allclose(served[0, 0], evaluated[0], rtol=1e-5)
  # rate_candidates takes ids in the layout: the same ratings.
  vocabulary = exported["tft_output"].vocabulary_by_name("item_id")
  ids = [[vocabulary.index(c) + F.NUM_RESERVED_IDS for c in candidates]]
  rated = exported["saved_model"].signatures["rate_candidates"](
      examples=serialized([example]), candidates=tf.constant(ids, tf.int64))[
          names.RATINGS].numpy()
  np.testing.assert_allclose(rated[0], served[0, :3], rtol=1e-5)


def test_unrated_history_items_are_rated_the_train_mean(exported):
  history = ITEMS[:3]
  candidates = [ITEMS[5], ITEMS[6]]
  signature = exported["saved_model"].signatures["serving_default"]
  def serve(ratings):
    inputs = raw_serving_inputs([history], [ratings], [candidates], [b"F"])
    return signature(**{k: tf.constant(v) for k, v in inputs.items()})[
        names.RATINGS].numpy()
  mean = exported["mean"]
  np.testing.assert_allclose(serve([0.0] * 3), serve([mean] * 3), rtol=1e-5)


def test_tflite_matches_saved_model_over_many_calls(exported):
  """Builtin ops only (the conversion would fail otherwise); the same
  ratings as the SavedModel, call after call."""
  rater = tflite.TFLiteRater(exported["tflite"])
  assert rater.context_length == CONTEXT
  signature = exported["saved_model"].signatures["serving_default"]
  rng = np.random.default_rng(5)
  for _ in range(25):
    length = int(rng.integers(0, CONTEXT + 3))
    history = list(rng.choice(ITEMS + [b"unknown"], size=length))
    ratings = [float(r) for r in rng.choice([0.0, 1.0, 3.5, 5.0], size=length)]
    candidates = list(rng.choice(ITEMS, size=int(rng.integers(1, CANDIDATES)),
                                 replace=False))
    gender = rng.choice([b"F", b"M", b""])
    got = rater.rate([h.decode() for h in history],
                     [c.decode() for c in candidates], ratings,
                     {F.USER_GENDER: gender.decode(), F.USER_AGE: 25})
    inputs = raw_serving_inputs([history], [ratings], [candidates], [gender])
    expected = signature(**{k: tf.constant(v) for k, v in inputs.items()})[
        names.RATINGS].numpy()[0, :len(candidates)]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="up to 12 candidates"):
    rater.rate([], ["200"] * (CANDIDATES + 1))
