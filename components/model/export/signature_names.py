"""Names of the exported signatures' inputs and outputs: what an app calls,
TFMA evaluates and the reports read. Plain constants (no TensorFlow), so the
command line and the reports can use them without loading the model code."""

SERVING = "serving_default"

# The retrieval model: `serving_default` returns the top K raw ids and their
# scores; `evaluate` scores the catalog, and the most-popular baseline beside.
TOP_ITEM_IDS = "top_item_ids"
TOP_SCORES = "top_scores"
SCORES = "scores"
POPULARITY_SCORES = "popularity_scores"

# The rating model: `serving_default` rates candidate raw ids; `evaluate`
# predicts the label's rating beside the two baselines it must beat.
CANDIDATE_ITEM_ID = "candidate_item_id"
RATINGS = "ratings"
RATING = "rating"
GLOBAL_MEAN_RATING = "global_mean_rating"
ITEM_MEAN_RATING = "item_mean_rating"
