"""preprocessing_fn under tft_beam: train-only vocabularies, id layout, padding."""
import numpy as np
import pytest
import tensorflow as tf

from components import features as F
from components import transform
from tests.sessions import analyze_and_transform, session

CONFIG = {"session": {"max_context_length": 3, "max_context_genres": 4}}


TRAIN = [
    session(b"a"),
    session(b"b", [b"a"], genres=[b"Drama"]),
    session(b"a", [b"a", b"b"], genres=[b"Drama", b"Comedy"]),
    session(b"c", [b"a", b"b", b"a"], genres=[b"Comedy"]),
    session(b"a", [b"c"], genres=[b"Drama"]),
]
EVAL = [
    # 'z' never occurs in train: out of vocabulary everywhere.
    session(b"z", [b"a", b"b", b"c", b"z"], ratings=[0.5, 5.0, 0.0, 4.0],
            years=[1995, 0, 1850, 2200],
            genres=[b"Drama", b"Comedy", b"Western", b"Drama", b"Comedy"],
            history=[b"a", b"b", b"c", b"z"]),
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  train, (evaluated,), output = analyze_and_transform(
      TRAIN, [EVAL], CONFIG, str(tmp_path_factory.mktemp("tft")))
  return train, evaluated, output


def test_item_vocabulary_comes_from_train_labels_by_frequency(transformed):
  _, _, output = transformed
  # 'a' labels three train examples, 'b' and 'c' one each.
  vocab = output.vocabulary_by_name(F.ITEM_VOCAB)
  assert vocab[0] == b"a"
  assert sorted(vocab) == [b"a", b"b", b"c"]
  assert b"z" not in vocab
  counts_file = output.vocabulary_file_by_name(transform.ITEM_COUNTS_VOCAB)
  with tf.io.gfile.GFile(counts_file, "rb") as f:
    counts = dict(reversed(line.split()) for line in f.read().splitlines())
  assert counts == {b"a": b"3", b"b": b"1", b"c": b"1"}


def test_labels_and_contexts_map_into_the_id_layout(transformed):
  train, _, output = transformed
  vocab = output.vocabulary_by_name(F.ITEM_VOCAB)
  ids = {item: i + F.NUM_RESERVED_IDS for i, item in enumerate(vocab)}
  assert [row[F.LABEL_ITEM] for row in train] == [
      ids[b"a"], ids[b"b"], ids[b"a"], ids[b"c"], ids[b"a"]]
  # Empty context: all PAD. Short context: padded at the end.
  np.testing.assert_array_equal(train[0][F.CONTEXT_ITEM], [F.PAD_ID] * 3)
  np.testing.assert_array_equal(train[1][F.CONTEXT_ITEM],
                                [ids[b"a"], F.PAD_ID, F.PAD_ID])
  np.testing.assert_array_equal(train[3][F.CONTEXT_ITEM],
                                [ids[b"a"], ids[b"b"], ids[b"a"]])
  # Padding positions carry PAD in every aligned feature.
  np.testing.assert_array_equal(train[1][F.CONTEXT_RATING_BUCKET], [7, 0, 0])


def test_eval_split_uses_train_vocabulary_and_keeps_recent_items(transformed):
  _, evaluated, output = transformed
  vocab = output.vocabulary_by_name(F.ITEM_VOCAB)
  ids = {item: i + F.NUM_RESERVED_IDS for i, item in enumerate(vocab)}
  row = evaluated[0]
  assert row[F.LABEL_ITEM] == F.OOV_ID
  # Four context items, length 3: the oldest ('a') is cut, 'z' is OOV.
  np.testing.assert_array_equal(row[F.CONTEXT_ITEM],
                                [ids[b"b"], ids[b"c"], F.OOV_ID])
  np.testing.assert_array_equal(row[F.CONTEXT_RATING_BUCKET], [11, F.OOV_ID, 9])
  # Year 0 is unknown (OOV); years outside 1900.. clip to the edge buckets.
  np.testing.assert_array_equal(
      row[F.CONTEXT_YEAR_BUCKET],
      [F.OOV_ID, F.NUM_RESERVED_IDS, F.NUM_YEAR_BUCKETS - 1])
  genres = output.vocabulary_by_name(F.GENRE_VOCAB)
  gid = {g: i + F.NUM_RESERVED_IDS for i, g in enumerate(genres)}
  # Five genres, length 4: the most recent four; 'Western' is not in train.
  np.testing.assert_array_equal(
      row[F.CONTEXT_GENRE_ID],
      [gid[b"Comedy"], F.OOV_ID, gid[b"Drama"], gid[b"Comedy"]])
  np.testing.assert_array_equal(
      row[F.HISTORY_ITEM], [ids[b"a"], ids[b"b"], ids[b"c"], F.OOV_ID])
