"""What the rating model's run_fn derives from the train split: the mean
ratings (every train rating once) and the item attribute table."""
import numpy as np
import pytest

from components.lib import feature_config as fc
from components.lib import features as F
from components.user_modules import rating_trainer

PAD = F.PAD_ID


def test_rating_statistics_count_every_train_rating_once():
  # The third window repeats the first one's 3 (rated 2) as context.
  arrays = {
      F.CONTEXT_ITEM_ID: np.array([[2, 3, PAD], [2, PAD, PAD], [3, 5, 2]]),
      F.CONTEXT_RATING_VALUE: np.array([[4.0, 2.0, 0.0], [5.0, 0.0, 0.0],
                                        [2.0, 2.0, 3.0]]),
      F.LABEL_ITEM_ID: np.array([3, 4, 4]),
      F.LABEL_RATING: np.array([1.0, 3.0, 5.0]),
      F.OWN_ITEMS_FROM: np.array([0, 0, 1]),
  }
  mean, item_means = rating_trainer.rating_statistics(arrays, 6)
  assert mean == pytest.approx((4 + 2 + 5 + 1 + 3 + 2 + 3 + 5) / 8)
  np.testing.assert_allclose(item_means, [mean, mean, 4.0, 1.5, 4.0, 2.0],
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
