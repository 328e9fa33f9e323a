"""preprocessing_fn under tft_beam: train-only vocabularies, id layout, padding."""
import numpy as np
import pytest
import tensorflow as tf

from components.lib import features as F
from tests.support.sessions import GENRE_SLOTS, analyze_and_transform
from tests.support.sessions import custom_config, feature_config, session

CONTEXT = 3
PAD, OOV = F.PAD_ID, F.OOV_ID

# Train windows: their own items hold each train interaction once.
TRAIN = [
    session(b"a", genres=[]),
    session(b"b", [b"a"], genres=[[b"Drama"]]),
    session(b"a", [b"c", b"b"], genres=[[b"Drama", b"Comedy"], [b"Comedy"]],
            gender=b"M", age=56, label_rating=2.5,
            label_year=1921, label_genres=(b"War", b"Comedy", b"Drama")),
    session(b"c", [b"a", b"b", b"a"], genres=[[b"Comedy"], [], [b"War"]]),
    # Its first two context items are an older window's: context only.
    session(b"b", [b"c", b"c", b"a"],
            genres=[[b"Western"], [b"Western"], [b"Drama"]], own_from=2),
]
EVAL = [
    # 'z' never occurs in train: out of vocabulary everywhere.
    session(b"z", [b"a", b"b", b"c", b"z"], ratings=[0.5, 5.0, 0.0, 4.0],
            years=[1995, 0, 1850, 2200],
            genres=[[b"Drama"], [b"Comedy", b"Western", b"War"], [], [b"Drama"]],
            history=[b"a", b"b", b"c", b"z"], gender=b"", age=0),
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  train, (evaluated,), output = analyze_and_transform(
      TRAIN, [EVAL], custom_config(feature_config(), CONTEXT),
      str(tmp_path_factory.mktemp("tft")))
  return train, evaluated, output


def ids_of(output, name):
  return {v: i + F.NUM_RESERVED_IDS
          for i, v in enumerate(output.vocabulary_by_name(name))}


def test_item_vocabulary_counts_train_interactions(transformed):
  _, _, output = transformed
  # The train windows' own items: a x6, b x4, c x2 (the last window's
  # repeated c, c and their genre are not counted).
  assert output.vocabulary_by_name("item_id") == [b"a", b"b", b"c"]
  counts_file = output.vocabulary_file_by_name(
      feature_config().label_counts_vocabulary)
  with tf.io.gfile.GFile(counts_file, "rb") as f:
    counts = dict(reversed(line.split()) for line in f.read().splitlines())
  assert counts == {b"a": b"6", b"b": b"4", b"c": b"2"}
  # Genre slots padded with '' are not a genre.
  assert sorted(output.vocabulary_by_name("genre")) == [
      b"Comedy", b"Drama", b"War"]
  assert sorted(output.vocabulary_by_name("user_gender")) == [b"F", b"M"]


def test_contexts_are_padded_at_the_end(transformed):
  train, _, output = transformed
  items, genres = ids_of(output, "item_id"), ids_of(output, "genre")
  assert [row[F.LABEL_ITEM_ID] for row in train] == [
      items[b"a"], items[b"b"], items[b"a"], items[b"c"], items[b"b"]]
  assert [row[F.OWN_ITEMS_FROM] for row in train] == [0, 0, 0, 0, 2]
  np.testing.assert_array_equal(train[0][F.CONTEXT_ITEM_ID], [PAD] * CONTEXT)
  np.testing.assert_array_equal(train[2][F.CONTEXT_ITEM_ID],
                                [items[b"c"], items[b"b"], PAD])
  # Every aligned feature pads the same positions; genres per item slot.
  np.testing.assert_array_equal(train[2][F.CONTEXT_RATING], [7, 7, PAD])
  np.testing.assert_array_equal(train[2][F.CONTEXT_YEAR], [20, 20, PAD])
  np.testing.assert_array_equal(
      train[2][F.CONTEXT_GENRE],
      [genres[b"Drama"], genres[b"Comedy"], genres[b"Comedy"], PAD, PAD, PAD])
  assert train[2][F.CONTEXT_GENRE].shape == (CONTEXT * GENRE_SLOTS,)
  gender = ids_of(output, "user_gender")
  np.testing.assert_array_equal(train[2][F.USER_GENDER], [gender[b"M"]])
  # Age 56 -> ten-year bucket 5.
  np.testing.assert_array_equal(train[2][F.USER_AGE], [5 + F.NUM_RESERVED_IDS])


def test_eval_split_uses_train_vocabulary_and_keeps_recent_items(transformed):
  _, evaluated, output = transformed
  items, genres = ids_of(output, "item_id"), ids_of(output, "genre")
  row = evaluated[0]
  assert row[F.LABEL_ITEM_ID] == OOV
  # Four context items, length 3: the oldest ('a') is cut, 'z' is OOV.
  np.testing.assert_array_equal(row[F.CONTEXT_ITEM_ID],
                                [items[b"b"], items[b"c"], OOV])
  # Ratings 5.0 -> bucket 9; 0 (not rated) -> OOV; 4.0 -> bucket 7.
  np.testing.assert_array_equal(row[F.CONTEXT_RATING], [11, OOV, 9])
  # Year 0 is unknown (OOV); years outside 1900.. clip to the edge buckets.
  np.testing.assert_array_equal(row[F.CONTEXT_YEAR],
                                [OOV, F.NUM_RESERVED_IDS, 29 + F.NUM_RESERVED_IDS])
  # Slots of the kept items; 'Western' is not in train; the third genre of
  # the second item did not fit its two slots.
  np.testing.assert_array_equal(
      row[F.CONTEXT_GENRE],
      [genres[b"Comedy"], OOV, PAD, PAD, genres[b"Drama"], PAD])
  np.testing.assert_array_equal(
      row[F.HISTORY_ITEM_ID], [items[b"a"], items[b"b"], items[b"c"], OOV])
  # A user without gender and age: padding, not a value.
  np.testing.assert_array_equal(row[F.USER_GENDER], [PAD])
  np.testing.assert_array_equal(row[F.USER_AGE], [PAD])


def test_label_attributes_and_raw_ratings_for_the_rating_model(transformed):
  train, (evaluated,), output = transformed[0], [transformed[1]], transformed[2]
  genres = ids_of(output, "genre")
  row = train[2]
  # The label's year and genres as the context's (two slots, third cut); its
  # rating stays a number, as do the context's, padded with 0.
  np.testing.assert_array_equal(row[F.label_feature(F.CONTEXT_YEAR)],
                                [4 + F.NUM_RESERVED_IDS])
  np.testing.assert_array_equal(row[F.label_feature(F.CONTEXT_GENRE)],
                                [genres[b"War"], genres[b"Comedy"]])
  assert row[F.LABEL_RATING] == pytest.approx(2.5)
  np.testing.assert_allclose(row[F.CONTEXT_RATING_VALUE], [3.0, 3.0, 0.0])
  np.testing.assert_allclose(evaluated[0][F.CONTEXT_RATING_VALUE],
                             [5.0, 0.0, 4.0])
  # The label's rating is the target, a number (never bucket ids).
  assert isinstance(row[F.LABEL_RATING], float)


def test_bucketize_edges():
  values = tf.constant([0.0, -3.0, 0.5, 0.74, 0.75, 5.0, 9.0])
  np.testing.assert_array_equal(
      F.bucketize(values, 0.25, 0.5, 10).numpy(),
      [OOV, OOV, 2, 2, 3, 11, 11])


def test_vocabulary_caps_leave_rare_values_out_of_vocabulary(tmp_path):
  # Both caps in one run (each run costs a TFT pipeline), each binding on its
  # own vocabulary: the items (a x5, b x3, c x2) keep their top 2 although c
  # is frequent enough; the genders (F x3, M x1) keep those seen twice.
  train, _, output = analyze_and_transform(
      TRAIN, [EVAL], custom_config(feature_config(), CONTEXT,
                                   vocabulary_top_k=2, vocabulary_min_count=2),
      str(tmp_path))
  items = [b"a", b"b"]
  assert output.vocabulary_by_name("item_id") == items
  assert output.vocabulary_by_name("user_gender") == [b"F"]
  counts_file = output.vocabulary_file_by_name(
      feature_config().label_counts_vocabulary)
  with tf.io.gfile.GFile(counts_file, "rb") as f:
    assert [line.split()[1] for line in f.read().splitlines()] == items
  # Train chunk c <- [a, b, a]: a label outside the cap is OOV.
  labels = [int(np.asarray(t[F.LABEL_ITEM_ID]).reshape(-1)[0]) for t in train]
  assert labels[3] == OOV
  assert int(np.asarray(train[2][F.USER_GENDER]).reshape(-1)[0]) == OOV
