"""Feature names and id layouts shared by every stage of the pipeline.

Ingestion writes raw interaction examples, the sessionizer turns them into
context/label examples, Transform maps those to integer ids (keeping each
feature's name, so a feature config names one feature at every stage), and
the serving signature repeats the same mapping on raw inputs with
TFLite-friendly ops. The names and the id layout live here, once, so that
the stages cannot drift apart.

Integer id layout of every categorical feature after Transform (items,
genres, user attributes, bucketized numbers):

    0 = PAD  (padding: masked out by every encoder; '' in raw strings)
    1 = OOV  (a value not in the train-split vocabulary, or a missing value)
    2.. = vocabulary entries in TFT's order (most frequent first), or buckets

TensorFlow is imported inside the functions: the names are also read by the
command line and the config, which should not wait for TensorFlow to load.
"""

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
# Features with values per context item (position features) start so.
CONTEXT_PREFIX = "context_"
CONTEXT_ITEM_ID = "context_item_id"
CONTEXT_RATING = "context_rating"
CONTEXT_GENRE = "context_genre"
CONTEXT_YEAR = "context_year"
# The label's own values of the position features: label_<x> beside
# context_<x> (label_rating, label_year, label_genre for MovieLens). The
# retrieval model never reads them; label_rating is what the rating model
# predicts.
LABEL_PREFIX = "label_"
LABEL_RATING = "label_rating"
# Raw rating values of the context items after Transform (context_rating
# itself becomes bucket ids): what the rating model pools its history with.
CONTEXT_RATING_VALUE = "context_rating_value"
# Every item the user interacted with before the label (eval and test only):
# the metrics exclude them from the ranking ("filter-seen").
HISTORY_ITEM_ID = "history_item_id"
# Train windows of one user overlap (components/sessionize/sessions.py): the
# context items before this position repeat an older window's items and are
# context only; the items from it on, and the label, are the window's own
# train interactions, each the own item of exactly one window. The position
# before an own item predicts it; 0 in eval and test examples.
OWN_ITEMS_FROM = "own_items_from"
# The ranker's train labels are the newest few train interactions of each
# user (session.ranker_labels_per_user): items of a train window from this
# position on are such labels, which the retrieval model that makes the
# ranker's train candidates never trains on. The window's item count (its
# context and label) when it has none.
RANKER_LABELS_FROM = "ranker_labels_from"

# --- Ranker examples: session examples with retrieval's candidates. --------
# (components/candidate_gen/) The retrieval model's best items for the
# example (vocabulary indices, best first; PAD where fewer were left) and
# their scores; the label's rank under the protocol over the whole catalog.
CANDIDATE_ITEM_INDEX = "candidate_item_index"
CANDIDATE_SCORE = "candidate_score"
LABEL_RETRIEVAL_RANK = "label_retrieval_rank"

# Splits of the session examples, following ../shared/PROTOCOL.md.
TRAIN = "train"
EVAL = "eval"
TEST = "test"
SPLITS = (TRAIN, EVAL, TEST)
# Forward evaluation (data in spans): each user's first interaction in the
# newest span, with the history before it, for the model pushed before that
# span arrived. Written by Sessionize beside the splits above; the Trainer
# and Transform never read it.
FORWARD = "forward"
# The ranker's train labels (see RANKER_LABELS_FROM), one example each with
# the history before it, as in eval and test; Transform never reads it.
RANKER_TRAIN = "ranker_train"
SESSION_SPLITS = SPLITS + (FORWARD, RANKER_TRAIN)



def label_feature(position_feature: str) -> str:
  """label_<x> for a position feature context_<x>."""
  return LABEL_PREFIX + position_feature[len(CONTEXT_PREFIX):]


PAD_ID = 0
OOV_ID = 1
NUM_RESERVED_IDS = 2


def vocabulary_ids(lookup_result):
  """Shifts TFT/table lookups (-1 for unknown, else 0-based) into the id layout."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.where(lookup_result < 0, tf.constant(OOV_ID, lookup_result.dtype),
                  lookup_result + NUM_RESERVED_IDS)


def bucket_boundaries(start: float, width: float, count: int):
  """The lower bounds of buckets 1..count-1 (bucketize; the on-device
  input mapping ships them)."""
  return [start + b * width for b in range(1, count)]


def bucketize(values, start: float, width: float, count: int):
  """Fixed-width buckets of numbers, in the id layout.

  Bucket b holds [start + b*width, start + (b+1)*width); values outside clip
  to the first or last bucket; a value <= 0 means "missing" (an unrated item,
  an unknown year) and maps to OOV. The boundaries are an attribute of one
  Bucketize op, which TFLite keeps as the BUCKETIZE op's options: a
  conversion with float16 weights rounds float constant tensors (0.2 would
  become 0.19995), never these, so a value on a boundary lands in the same
  bucket in every converted file as in training.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  values = tf.cast(values, tf.float32)
  bucket = tf.raw_ops.Bucketize(
      input=values, boundaries=bucket_boundaries(start, width, count))
  return tf.where(values > 0, tf.cast(bucket, tf.int64) + NUM_RESERVED_IDS,
                  tf.constant(OOV_ID, tf.int64))
