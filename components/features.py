"""Feature names and id layouts shared by every stage of the pipeline.

Ingestion writes raw interaction examples, the sessionizer turns them into
context/label examples, Transform maps those to integer ids, and the serving
signature repeats the same mapping on raw inputs with TFLite-friendly ops. The
names and the id layout live here, once, so that the stages cannot drift apart.

Integer id layout of every categorical sequence feature after Transform
(items, genres, rating and year buckets):

    0 = PAD  (padding position, masked out by every encoder)
    1 = OOV  (a value not in the train-split vocabulary, or a missing value)
    2.. = vocabulary entries in TFT's order (most frequent first)
"""
import tensorflow as tf

# --- Raw interaction examples (one per rating), written by ingestion. -------
USER_ID = "user_id"
ITEM_ID = "item_id"
RATING = "rating"
TIMESTAMP = "timestamp"
# Byte offset of the rating's line in its file: breaks timestamp ties in file
# order, because the distributed read does not keep the order of the file.
FILE_OFFSET = "file_offset"
ITEM_TITLE = "item_title"
ITEM_GENRES = "item_genres"
ITEM_YEAR = "item_year"
USER_GENDER = "user_gender"
USER_AGE = "user_age"
USER_OCCUPATION = "user_occupation"
USER_ZIPCODE = "user_zipcode"

USER_FEATURES = (USER_GENDER, USER_AGE, USER_OCCUPATION, USER_ZIPCODE)

# --- Session examples (one per prediction), written by the sessionizer. -----
LABEL_ITEM_ID = "label_item_id"
CONTEXT_ITEM_ID = "context_item_id"
CONTEXT_RATING = "context_rating"
CONTEXT_GENRE = "context_genre"
CONTEXT_YEAR = "context_year"
# Every item the user interacted with before the label (eval and test only):
# the metrics exclude them from the ranking ("filter-seen").
HISTORY_ITEM_ID = "history_item_id"

# Splits of the session examples, following ../shared/PROTOCOL.md.
TRAIN = "train"
EVAL = "eval"
TEST = "test"
SPLITS = (TRAIN, EVAL, TEST)

# --- Transformed features (model inputs), written by Transform. -------------
CONTEXT_ITEM = "context_item"
CONTEXT_RATING_BUCKET = "context_rating_bucket"
CONTEXT_GENRE_ID = "context_genre_id"
CONTEXT_YEAR_BUCKET = "context_year_bucket"
LABEL_ITEM = "label_item"
HISTORY_ITEM = "history_item"

# TFT vocabulary names (files under transform_fn/assets).
ITEM_VOCAB = "item_id"
GENRE_VOCAB = "genre"

PAD_ID = 0
OOV_ID = 1
NUM_RESERVED_IDS = 2

# Ratings: half-star buckets, 0.5 -> 2 ... 5.0 -> 11; a rating <= 0 means
# "not rated" and maps to OOV.
NUM_RATING_BUCKETS = NUM_RESERVED_IDS + 10
# Years: five-year buckets from 1900 (earlier years clip to the first bucket,
# later to the last); a missing year (0) maps to OOV.
YEAR_ORIGIN = 1900
YEAR_BUCKET_WIDTH = 5
NUM_YEAR_BUCKETS = NUM_RESERVED_IDS + 30


def vocabulary_ids(lookup_result):
  """Shifts TFT/table lookups (-1 for unknown, else 0-based) into the id layout."""
  return tf.where(lookup_result < 0, tf.constant(OOV_ID, lookup_result.dtype),
                  lookup_result + NUM_RESERVED_IDS)


def rating_buckets(rating):
  """Maps ratings to half-star buckets; a rating <= 0 (not rated) is OOV."""
  rating = tf.cast(rating, tf.float32)
  bucket = tf.clip_by_value(tf.round(rating * 2.0), 1.0, 10.0)
  return tf.where(rating > 0, tf.cast(bucket, tf.int64) + OOV_ID,
                  tf.constant(OOV_ID, tf.int64))


def year_buckets(year):
  """Maps release years to fixed five-year buckets; a year <= 0 is OOV.

  Float arithmetic on purpose: TFLite has no builtin int64 floor division.
  """
  year = tf.cast(year, tf.float32)
  bucket = tf.floor((year - YEAR_ORIGIN) / YEAR_BUCKET_WIDTH)
  bucket = tf.clip_by_value(bucket, 0.0,
                            NUM_YEAR_BUCKETS - NUM_RESERVED_IDS - 1.0)
  return tf.where(year > 0, tf.cast(bucket, tf.int64) + NUM_RESERVED_IDS,
                  tf.constant(OOV_ID, tf.int64))
