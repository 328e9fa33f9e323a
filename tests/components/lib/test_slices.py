"""Slice values the evaluation reports on (components/lib/slices.py)."""

from components.lib import slices


def test_history_length_buckets_cover_every_length():
  edges = (10, 20, 50)
  assert slices.history_length_buckets(edges) == ["<10", "10-19", "20-49",
                                                  "50+"]
  assert [slices.history_length_bucket(n, edges)
          for n in (1, 9, 10, 19, 20, 49, 50, 5000)] == [
              "<10", "<10", "10-19", "10-19", "20-49", "20-49", "50+", "50+"]


def test_popularity_tiers_follow_the_share_of_train_interactions():
  # 100 interactions: a=40, b=20, c=15, d=10, e=10, f=5.
  counts = [(b"f", 5), (b"a", 40), (b"c", 15), (b"b", 20), (b"e", 10),
            (b"d", 10)]
  tiers = slices.popularity_tiers(counts, (0.5, 0.8))
  # a starts at 0% (head), b at 40% (head), c at 60% (torso), d at 75%
  # (torso), e at 85% (tail), f at 95% (tail); d before e: ties by id.
  assert tiers == {b"a": "head", b"b": "head", b"c": "torso", b"d": "torso",
                   b"e": "tail", b"f": "tail"}
  # The most frequent item is always head, even if it alone passes the share.
  assert slices.popularity_tiers([(b"x", 99), (b"y", 1)], (0.5, 0.8)) == {
      b"x": "head", b"y": "tail"}
  assert slices.popularity_tiers([], (0.5, 0.8)) == {}


def test_movielens_age_groups_read_ml1m_codes_and_exact_ages():
  # ML-1M stores each group's lower bound; ML-100K exact ages.
  assert [slices.movielens_age_group(a) for a in (1, 18, 25, 35, 45, 50, 56)
          ] == [g for _, g in slices.MOVIELENS_AGE_GROUPS]
  assert [slices.movielens_age_group(a) for a in (7, 17, 24, 33, 49, 73)] == [
      "under 18", "under 18", "18-24", "25-34", "45-49", "56+"]


def test_slice_values_sort_in_their_natural_order():
  buckets = ["200+", "<10", "100-199", "10-19", "20-49"]
  assert sorted(buckets, key=slices.tier_order) == [
      "<10", "10-19", "20-49", "100-199", "200+"]
  assert sorted(["unseen", "tail", "head", "torso"], key=slices.tier_order) == [
      "head", "torso", "tail", "unseen"]
  ages = [g for _, g in slices.MOVIELENS_AGE_GROUPS]
  assert sorted(reversed(ages), key=slices.tier_order) == ages
