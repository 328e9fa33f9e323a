"""The ranking stage: rating model parts, its training data, export, TFLite
parity and the two-stage ranks."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import feature_config as fc
from components.lib import features as F
from components import rating_serving
from components import rating_trainer
from components import tflite
from components import two_stage
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.rating_model import ItemTower, RatedHistoryPooling
from components.model.rating_model import RatingModel, chunk_positions
from components.transform import rating_model_item_features
from tests.sessions import GENRE_SLOTS, analyze_and_transform, custom_config
from tests.sessions import feature_config, session

PAD = F.PAD_ID
MODEL = {"embedding_dim": 8, "hidden_units": [16], "dropout": 0.0}


# --- Layers ---------------------------------------------------------------------

def test_causal_pooling_at_a_position_is_the_full_pooling_of_its_prefix():
  pooling = RatedHistoryPooling()
  items = tf.random.stateless_normal([2, 5, 3], seed=[1, 2])
  ratings = tf.constant([[1.0, -1.0, 0.5, 2.0, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]])
  mask = tf.constant([[True] * 4 + [False], [True, True, False, False, False]])
  causal = pooling(items, ratings, mask, causal=True).numpy()
  assert causal.shape == (2, 5, 2 * 3 + 2)
  for row in range(2):
    for position in range(5):
      prefix = pooling(items[row:row + 1, :position],
                       ratings[row:row + 1, :position],
                       mask[row:row + 1, :position]).numpy()[0]
      np.testing.assert_allclose(causal[row, position], prefix, atol=1e-6)
  # Spelled out: the first row's position 2 pools items 0 and 1.
  expected_mean = (items[0, 0] + items[0, 1]).numpy() / 2
  np.testing.assert_allclose(causal[0, 2, :3], expected_mean, atol=1e-6)
  np.testing.assert_allclose(causal[0, 2, 6], 0.0, atol=1e-6)  # (1 - 1) / 2
  np.testing.assert_allclose(causal[0, 2, 7], np.log1p(2.0), atol=1e-6)
  # Padding adds nothing: the second row is the same at positions 2..4.
  np.testing.assert_allclose(causal[1, 2], causal[1, 4], atol=1e-6)
  # An empty history pools to zeros.
  np.testing.assert_allclose(causal[:, 0], 0.0)


def test_item_tower_looks_attributes_up_by_id():
  genre = fc.Feature("context_genre", "STRING", 2, 4, vocabulary="genre")
  year = fc.Feature("context_year", "INT", 1, 4,
                    buckets=fc.Buckets(1900, 10, 5))
  # Items 2 and 3 share every attribute; item 4 has none (PAD).
  table = np.array([[0, 0, 0], [0, 0, 0], [2, 3, 4], [2, 3, 4], [0, 0, 0]])
  keras.utils.set_random_seed(3)
  tower = ItemTower(5, 6, [genre, year], table, {"genre": 5})
  vectors, bias = tower(tf.constant([[2, 3, 4]]))
  vectors = vectors.numpy()
  assert vectors.shape == (1, 3, 6 + 4 + 4) and bias.shape == (1, 3)
  np.testing.assert_allclose(vectors[0, 0, 6:], vectors[0, 1, 6:])
  assert not np.allclose(vectors[0, 0, :6], vectors[0, 1, :6])  # own ids
  np.testing.assert_allclose(vectors[0, 2, 6:], 0.0)
  np.testing.assert_allclose(bias, 0.0)  # biases start at zero
  with pytest.raises(ValueError, match="attribute table"):
    ItemTower(6, 6, [genre, year], table, {"genre": 5})


def test_chunk_positions_put_the_label_after_the_padding():
  items, ratings = chunk_positions(
      {F.CONTEXT_ITEM_ID: tf.constant([[5, 6, PAD]]),
       F.CONTEXT_RATING_VALUE: tf.constant([[4.0, 2.0, 0.0]])},
      tf.constant([7]), tf.constant([5.0]))
  np.testing.assert_array_equal(items, [[5, 6, PAD, 7]])
  np.testing.assert_allclose(ratings, [[4.0, 2.0, 0.0, 5.0]])


# --- Training data ----------------------------------------------------------------

def test_rating_statistics_count_every_train_rating_once():
  arrays = {
      F.CONTEXT_ITEM_ID: np.array([[2, 3, PAD], [2, PAD, PAD]]),
      F.CONTEXT_RATING_VALUE: np.array([[4.0, 2.0, 0.0], [5.0, 0.0, 0.0]]),
      F.LABEL_ITEM_ID: np.array([3, 4]),
      F.LABEL_RATING: np.array([1.0, 3.0]),
  }
  mean, item_means = rating_trainer.rating_statistics(arrays, 6)
  assert mean == pytest.approx((4 + 2 + 5 + 1 + 3) / 5)
  np.testing.assert_allclose(item_means, [mean, mean, 4.5, 1.5, 3.0, mean],
                             rtol=1e-6)


def test_attribute_table_from_contexts_and_labels():
  year = fc.Feature(F.CONTEXT_YEAR, "INT", 1, 4, buckets=fc.Buckets(1900, 5, 30))
  genre = fc.Feature(F.CONTEXT_GENRE, "STRING", 2, 4, vocabulary="genre")
  arrays = {
      F.CONTEXT_ITEM_ID: np.array([[2, 3, PAD]]),
      F.CONTEXT_YEAR: np.array([[10, 11, PAD]]),
      F.CONTEXT_GENRE: np.array([[2, 3, 4, PAD, PAD, PAD]]),
      # Item 5 only ever is a label.
      F.LABEL_ITEM_ID: np.array([5]),
      F.label_feature(F.CONTEXT_YEAR): np.array([[12]]),
      F.label_feature(F.CONTEXT_GENRE): np.array([[3, 2]]),
  }
  table = rating_trainer.attribute_table(arrays, [year, genre], 7)
  np.testing.assert_array_equal(table, [
      [0, 0, 0], [0, 0, 0], [10, 2, 3], [11, 4, 0], [0, 0, 0], [12, 3, 2],
      [0, 0, 0]])


# --- Model, export, TFLite ----------------------------------------------------------

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
  attributes = rating_model_item_features(FEATURES)
  names = rating_serving.model_feature_names(FEATURES) + [F.LABEL_RATING] + [
      n for f in attributes for n in (f.name, F.label_feature(f.name))]
  arrays = {k: np.stack([np.asarray(r[k]) for r in transformed])
            for k in names}
  num_items = tft_output.vocabulary_size_by_name("item_id") + 2
  sizes = {name: tft_output.vocabulary_size_by_name(name) + 2
           for name in FEATURES.vocabularies()}
  mean, item_means = rating_trainer.rating_statistics(arrays, num_items)
  table = rating_trainer.attribute_table(arrays, attributes, num_items)
  keras.utils.set_random_seed(1)
  model = RatingModel(FEATURES, sizes, attributes, table, mean, MODEL)
  model.compile(optimizer=keras.optimizers.Adam(0.02))
  inputs = {k: arrays[k] for k in rating_serving.model_feature_names(FEATURES)}
  model.fit(tf.data.Dataset.from_tensor_slices(
      (inputs, arrays[F.LABEL_RATING])).batch(8), epochs=30, verbose=0)
  export = rating_serving.RatingExport(model, tft_output, FEATURES, CONTEXT,
                                       item_means, mean, CANDIDATES)
  path = str(tmp / "saved_model")
  rating_serving.save(export, path)
  tflite_path = str(tmp / "model.tflite")
  with open(tflite_path, "wb") as f:
    f.write(tflite.convert(path))
  return {"saved_model": tf.saved_model.load(path), "tflite": tflite_path,
          "test": test, "transformed_test": transformed_test,
          "tft_output": tft_output, "mean": mean, "item_means": item_means}


def serialized(examples):
  """Session examples (TFT instance dicts) as the sessionizer writes them."""
  # pylint: disable=import-outside-toplevel,protected-access
  from components import sessionize
  list_of = {name: sessionize._KIND[spec.dtype]
             for name, spec in sessionize.feature_spec().items()}
  return tf.constant([sessionize._example(
      {k: v if isinstance(v, list) else [v] for k, v in e.items()},
      list_of).SerializeToString() for e in examples])


def test_model_learns_the_users_taste_and_beats_the_baselines(exported):
  out = exported["saved_model"].signatures["evaluate"](
      examples=serialized(exported["test"]))
  labels = np.array([e[F.LABEL_RATING][0] for e in exported["test"]])
  rmse = {name: float(np.sqrt(np.mean((out[name].numpy() - labels) ** 2)))
          for name in (rating_serving.RATING, rating_serving.GLOBAL_MEAN_RATING,
                       rating_serving.ITEM_MEAN_RATING)}
  # Ratings are 1 or 5 by taste, which only the history tells: the means
  # cannot know it (RMSE about 2), the model reads it from the context.
  assert rmse[rating_serving.GLOBAL_MEAN_RATING] > 1.5
  assert rmse[rating_serving.ITEM_MEAN_RATING] > 1.5
  assert rmse[rating_serving.RATING] < 1.0
  np.testing.assert_allclose(out[rating_serving.GLOBAL_MEAN_RATING],
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
      rating_serving.CANDIDATE_ITEM_ID: np.array(
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
          rating_serving.RATINGS].numpy()
  assert served.shape == (1, CANDIDATES)
  evaluated = exported["saved_model"].signatures["evaluate"](
      examples=serialized([example]))[rating_serving.RATING].numpy()
  np.testing.assert_allclose(served[0, 0], evaluated[0], rtol=1e-5)
  # rate_candidates takes ids in the layout: the same ratings.
  vocabulary = exported["tft_output"].vocabulary_by_name("item_id")
  ids = [[vocabulary.index(c) + F.NUM_RESERVED_IDS for c in candidates]]
  rated = exported["saved_model"].signatures["rate_candidates"](
      examples=serialized([example]), candidates=tf.constant(ids, tf.int64))[
          rating_serving.RATINGS].numpy()
  np.testing.assert_allclose(rated[0], served[0, :3], rtol=1e-5)


def test_unrated_history_items_are_rated_the_train_mean(exported):
  history = ITEMS[:3]
  candidates = [ITEMS[5], ITEMS[6]]
  signature = exported["saved_model"].signatures["serving_default"]
  def serve(ratings):
    inputs = raw_serving_inputs([history], [ratings], [candidates], [b"F"])
    return signature(**{k: tf.constant(v) for k, v in inputs.items()})[
        rating_serving.RATINGS].numpy()
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
        rating_serving.RATINGS].numpy()[0, :len(candidates)]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="up to 12 candidates"):
    rater.rate([], ["200"] * (CANDIDATES + 1))


# --- Two stages ---------------------------------------------------------------------

def test_reordered_ranks_follow_the_protocol():
  # Three users; retrieval top 3 per user (ids, scores) and their ratings.
  top_ids = np.array([[5, 6, 7], [5, 6, 7], [8, 9, 4]])
  top_scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, EXCLUDED_SCORE],
                         [3.0, 2.0, 1.0]])
  ratings = np.array([[4.0, 5.0, 3.0], [4.0, 4.0, 5.0], [1.0, 1.0, 1.0]])
  labels = np.array([5, 6, 2])
  ranks = np.array([0, 1, 7])
  # User 0: target 5 rated 4.0, below 6's 5.0 -> rank 1. User 1: target 6
  # ties with 5 (ties count against it; the excluded 7 is no candidate) ->
  # rank 1. User 2: target outside the top 3 keeps its retrieval rank.
  np.testing.assert_array_equal(two_stage.reordered_ranks(
      ranks, top_ids, top_scores, ratings, labels, 3), [1, 1, 7])
  # With the top 2 only, user 0's target still ranks 1; user 1 too.
  np.testing.assert_array_equal(two_stage.reordered_ranks(
      ranks, top_ids, top_scores, ratings, labels, 2), [1, 1, 7])
  # A target ranked within n by score but cut by top_k's tie-break keeps n.
  np.testing.assert_array_equal(two_stage.reordered_ranks(
      np.array([2]), top_ids[:1], top_scores[:1], ratings[:1],
      np.array([9]), 2), [2])


def test_retrieval_ranks_count_ties_against_the_target():
  scores = np.array([[1.0, 2.0, 2.0, 0.5], [EXCLUDED_SCORE, 0.0, 1.0, 3.0]])
  np.testing.assert_array_equal(
      two_stage.retrieval_ranks(scores, np.array([1, 0])), [1, 3])


def test_rank_metrics():
  metrics = two_stage.rank_metrics(np.array([0, 3, 9, 10, 50]))
  assert metrics["hit_rate@1"] == pytest.approx(0.2)
  assert metrics["hit_rate@5"] == pytest.approx(0.4)
  assert metrics["hit_rate@10"] == pytest.approx(0.6)
  assert metrics["ndcg@10"] == pytest.approx(
      (1.0 + 1 / np.log2(5) + 1 / np.log2(11)) / 5)
