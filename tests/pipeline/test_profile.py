"""The data profile the defaults adapt to: users, items, interactions and
train-history lengths read from the raw files."""
import pytest

from components.lib.ingestion import IngestionError
from components.lib.settings import DataConfig, SessionConfig
from pipeline import profile
from tests.support.pipeline_runs import ALICCP_SAMPLE, SAMPLE


def _csv(tmp_path, lines):
  (tmp_path / "ratings.csv").write_text(
      "userId,movieId,rating,timestamp\n" + "".join(lines), encoding="utf-8")
  (tmp_path / "movies.csv").write_text(
      "movieId,title,genres\n1,A (1990),Drama\n", encoding="utf-8")
  return DataConfig(data_dir=str(tmp_path))


def test_profile_counts_users_items_and_train_histories(tmp_path):
  data = _csv(tmp_path, [
      # User 1: 6 interactions (4 train), 2: 2 (dropped), 3: 3 (1 train),
      # and a line that does not parse (ingestion reports it).
      *[f"1,{i},4.0,{100 + i}\n" for i in range(6)],
      "2,7,5.0,1\n", "2,8,1.0,2\n",
      "3,1,2.0,5\n", "3,2,3.0,6\n", "3,9,1.0,7\n",
      "3,not a line\n"])
  found = profile.profile(data, SessionConfig())
  assert (found.users, found.items, found.interactions) == (2, 9, 9)
  assert found.history_quantiles == {50: 2, 80: 3, 90: 3}
  assert not found.sampled
  # min_rating 3 leaves user 3 with one (< 3: dropped) and 1 with 6.
  rated = profile.profile(data, SessionConfig(min_rating=3.0))
  assert (rated.users, rated.interactions) == (1, 6)
  assert rated.history_quantiles[80] == 4
  assert "1 users, 7 items, 6 interactions" in rated.describe()


def test_profile_of_the_embedded_samples():
  found = profile.profile(DataConfig(data_dir=SAMPLE), SessionConfig())
  assert (found.users, found.items, found.interactions) == (600, 757, 64162)
  assert found.history_quantiles[50] <= found.history_quantiles[80] <= (
      found.history_quantiles[90])
  clicks = profile.profile(DataConfig(dataset="aliccp",
                                      data_dir=ALICCP_SAMPLE), SessionConfig())
  assert clicks.users > 0 and clicks.items > 0 and not clicks.sampled


def test_large_aliccp_files_are_profiled_from_their_first_bytes(monkeypatch):
  monkeypatch.setattr(profile, "MAX_ALICCP_BYTES", 20_000)
  whole = profile.profile(DataConfig(dataset="aliccp", data_dir=ALICCP_SAMPLE),
                          SessionConfig())
  assert whole.sampled
  assert "(a sample of the files)" in whole.describe()


def test_missing_data_is_the_ingestion_error(tmp_path):
  with pytest.raises(IngestionError, match="data directory not found"):
    profile.profile(DataConfig(data_dir=str(tmp_path / "nope")),
                    SessionConfig())
