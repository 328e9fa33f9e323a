"""Names of the exported signatures' inputs and outputs: what an app calls,
TFMA evaluates and the reports read. Plain constants (no TensorFlow), so the
command line and the reports can use them without loading the model code."""

SERVING = "serving_default"
# The retrieval model's on-device signature (model.tflite): vocabulary
# indices in, indices out, at a static batch of one (input_mapping.py).
ONDEVICE = "ondevice"

# The retrieval model: `serving_default` returns the top K raw ids and their
# scores; `evaluate` scores the catalog, and the most-popular baseline beside.
TOP_ITEM_IDS = "top_item_ids"
TOP_SCORES = "top_scores"
SCORES = "scores"
POPULARITY_SCORES = "popularity_scores"
# `ondevice` returns the indices of its top items (the context's own items
# among them: the caller drops those) and their scores, beside `scores`.
TOP_ITEM_INDICES = "top_item_indices"

# The rating model: `serving_default` rates candidate raw ids; `evaluate`
# predicts the label's rating beside the two baselines it must beat.
CANDIDATE_ITEM_ID = "candidate_item_id"
RATINGS = "ratings"
RATING = "rating"
GLOBAL_MEAN_RATING = "global_mean_rating"
ITEM_MEAN_RATING = "item_mean_rating"

# The next-item ranker's on-device signature (ranker.tflite): retrieval's
# candidates (vocabulary indices) and scores, the context's indices and the
# user's, at a static batch of one; returns `scores`, one per candidate.
RANK = "rank"
