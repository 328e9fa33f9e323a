"""The retrieval SavedModel's signatures: serving_default on raw ids (top K,
context excluded, most popular when empty) and evaluate (history excluded,
the popularity baseline), which agree."""
import numpy as np
import tensorflow as tf

from components.lib import features as F
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export import retrieval
from tests.support.retrieval_model import (CONTEXT, ITEMS, TOP_K, serve,
                                           serialized_examples)


def test_serving_returns_top_k_raw_ids_without_context_items(retrieval_export):
  contexts = [[ITEMS[0], ITEMS[1]], [ITEMS[5]], [], [ITEMS[7], b"unknown"]]
  out = serve(retrieval_export["saved_model"], contexts)
  ids = out[retrieval.TOP_ITEM_IDS].numpy()
  scores = out[retrieval.TOP_SCORES].numpy()
  assert ids.shape == scores.shape == (len(contexts), TOP_K)
  for context, row, row_scores in zip(contexts, ids, scores):
    assert set(row) <= set(ITEMS)  # raw ids, never <pad>/<oov>
    assert not set(row) & set(context)
    assert len(set(row)) == TOP_K
    assert np.all(np.diff(row_scores) <= 0)


def test_empty_history_gets_the_most_popular_items(retrieval_export):
  counts = {}
  for e in retrieval_export["train"]:
    for item in e[F.CONTEXT_ITEM_ID] + [e[F.LABEL_ITEM_ID]]:
      counts[item] = counts.get(item, 0) + 1
  out = serve(retrieval_export["saved_model"], [[]])
  scores = out[retrieval.TOP_SCORES].numpy()[0]
  ids = out[retrieval.TOP_ITEM_IDS].numpy()[0]
  np.testing.assert_array_equal(scores, [counts[i] for i in ids])
  assert list(scores) == sorted(counts.values(), reverse=True)[:TOP_K]


def test_trained_model_learned_the_next_item_habit(retrieval_export):
  # Every user watches items in id order: after 102 comes 103.
  out = serve(retrieval_export["saved_model"], [[ITEMS[0], ITEMS[1], ITEMS[2]]])
  assert out[retrieval.TOP_ITEM_IDS].numpy()[0][0] == ITEMS[3]


def test_evaluate_excludes_history_and_matches_serving(retrieval_export):
  """The TFT path (evaluate) and the serving lookups give the same scores."""
  serialized = serialized_examples(retrieval_export, retrieval_export["test"])
  out = retrieval_export["saved_model"].signatures["evaluate"](
      examples=tf.constant(serialized))
  scores = out[retrieval.SCORES].numpy()
  popularity = out[retrieval.POPULARITY_SCORES].numpy()
  vocab = retrieval_export["tft_output"].vocabulary_by_name("item_id")
  index = {item: i + F.NUM_RESERVED_IDS for i, item in enumerate(vocab)}
  train_counts = {}
  for e in retrieval_export["train"]:
    for item in e[F.CONTEXT_ITEM_ID] + [e[F.LABEL_ITEM_ID]]:
      train_counts[item] = train_counts.get(item, 0) + 1
  for s, row, pop in zip(retrieval_export["test"], scores, popularity):
    excluded = {index[h] for h in s[F.HISTORY_ITEM_ID]} | {F.PAD_ID, F.OOV_ID}
    for i in range(len(row)):
      if i in excluded:
        assert row[i] == EXCLUDED_SCORE and pop[i] == EXCLUDED_SCORE
      else:
        assert row[i] > EXCLUDED_SCORE
        assert pop[i] == train_counts[vocab[i - F.NUM_RESERVED_IDS]]
    # Here the history is the context, so serving's top-K is evaluate's.
    if len(s[F.HISTORY_ITEM_ID]) <= CONTEXT:
      served = serve(retrieval_export["saved_model"], [s[F.CONTEXT_ITEM_ID]])
      top = np.sort(row)[::-1][:TOP_K]
      np.testing.assert_allclose(served[retrieval.TOP_SCORES].numpy()[0], top,
                                 rtol=1e-5, atol=1e-5)
