"""The app's side of the on-device model: raw values to indices exactly as
the SavedModel maps them (Transform's layout), and its file round trip."""
import numpy as np
import pytest
import tensorflow as tf

from components.lib import features as F
from components.model.export.input_mapping import (PADDING, SEQUENCE, STATIC,
                                                   UNKNOWN, Input, InputMapping)

BUCKETS = (1900.0, 5.0, 30)  # (start, width, count): the MovieLens years'


def _mapping(context_length=3):
  boundaries = tuple(float(np.float32(b)) for b in F.bucket_boundaries(*BUCKETS))
  return InputMapping(
      [Input(F.CONTEXT_ITEM_ID, SEQUENCE, 1, vocabulary="item_id"),
       Input(F.CONTEXT_YEAR, SEQUENCE, 1, boundaries=boundaries),
       Input(F.CONTEXT_GENRE, SEQUENCE, 2, vocabulary="genre"),
       Input(F.USER_GENDER, STATIC, 1, vocabulary="user_gender")],
      {"item_id": ["10", "20", "30", "40"], "genre": ["Drama", "War"],
       "user_gender": ["F", "M"]}, "item_id", context_length, top_k=2,
      popularity=[0.1, 0.4, 0.1, 0.4])


def test_numbers_land_in_the_buckets_of_the_saved_model():
  mapping = _mapping()
  # Every boundary, just beside it, outside the range, and missing values.
  values = [v for b in F.bucket_boundaries(*BUCKETS) for v in
            (b, np.nextafter(np.float32(b), np.float32(0)))]
  values += [1.0, 1899.0, 2100.0, 0.0, -3.0]
  want = F.bucketize(tf.constant(values, tf.float32), *BUCKETS).numpy()
  got = [mapping.index(F.CONTEXT_YEAR, v) for v in values]
  np.testing.assert_array_equal(got, want)
  assert mapping.index(F.CONTEXT_YEAR, None) == UNKNOWN


def test_ids_padding_and_unknown_values():
  mapping = _mapping()
  arrays = mapping.inputs_of(
      ["10", "99", "30", "40"],
      {F.CONTEXT_YEAR: [1990, 0, 2001, None],
       F.CONTEXT_GENRE: [["Drama"], ["War", "Drama", "War"], [], ["Opera"]]},
      user={F.USER_GENDER: "M"})
  # The most recent three items; unknown ids and values are UNKNOWN,
  # missing slots and the positions after the context PADDING.
  np.testing.assert_array_equal(arrays[F.CONTEXT_ITEM_ID], [[UNKNOWN, 4, 5]])
  np.testing.assert_array_equal(arrays[F.CONTEXT_YEAR][0, 0], UNKNOWN)
  np.testing.assert_array_equal(arrays[F.CONTEXT_GENRE],
                                [[3, 2, PADDING, PADDING, UNKNOWN, PADDING]])
  np.testing.assert_array_equal(arrays[F.USER_GENDER], [[3]])
  short = mapping.inputs_of(["20"])
  np.testing.assert_array_equal(short[F.CONTEXT_ITEM_ID], [[3, PADDING,
                                                            PADDING]])
  np.testing.assert_array_equal(short[F.CONTEXT_YEAR], [[UNKNOWN, PADDING,
                                                         PADDING]])
  np.testing.assert_array_equal(short[F.USER_GENDER], [[PADDING]])
  for arrays in (arrays, short):
    assert all(a.dtype == np.int32 and a.shape == (1, mapping.width(n))
               for n, a in arrays.items())


def test_recommendations_drop_the_context_and_reserved_and_keep_top_k():
  mapping = _mapping()
  ids, scores = mapping.recommendations(
      [3, 5], np.array([3, PADDING, 4, UNKNOWN, 5, 2]),
      np.array([4.0, 3.5, 3.0, 2.5, 2.0, 1.0]))
  assert ids == ["30", "10"]
  np.testing.assert_array_equal(scores, [3.0, 1.0])


def test_no_history_gets_the_most_popular_items():
  mapping = _mapping()
  ids, shares = mapping.most_popular()
  assert ids == ["20", "40"]  # ties: the vocabulary's order
  np.testing.assert_allclose(shares, [0.4, 0.4])
  np.testing.assert_allclose(mapping.popularity_scores(),
                             [0.0, 0.0, 0.1, 0.4, 0.1, 0.4])
  with pytest.raises(ValueError, match="3 popularity shares for 4 items"):
    InputMapping([], mapping.vocabularies, "item_id", 3, 2, [0.1] * 3)


def test_misaligned_or_unknown_inputs_are_errors():
  mapping = _mapping()
  with pytest.raises(ValueError, match="align"):
    mapping.inputs_of(["10", "20"], {F.CONTEXT_YEAR: [1990]})
  with pytest.raises(ValueError, match="not a position input"):
    mapping.inputs_of(["10"], {F.USER_GENDER: ["F"]})
  # User features the model does not take are ignored.
  assert mapping.inputs_of(["10"], user={"user_zip": "1"}).keys() == (
      mapping.inputs.keys())


def test_file_round_trip(tmp_path):
  mapping = _mapping()
  path = str(tmp_path / "input_mapping.json")
  mapping.save(path)
  loaded = InputMapping.load(path)
  assert loaded.to_dict() == mapping.to_dict()
  query = (["40", "10"], {F.CONTEXT_YEAR: [1999.5, 1900.0]})
  for name, values in mapping.inputs_of(*query).items():
    np.testing.assert_array_equal(loaded.inputs_of(*query)[name], values)
