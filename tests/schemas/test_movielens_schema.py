"""The curated raw-data schema (schemas/movielens/schema.pbtxt) against data.

Statistics are computed the way StatisticsGen does (TFDV's GenerateStatistics
on the RecordBatches TFXIO decodes from serialized tf.Examples) and validated
the way ExampleValidator does (tfdv.validate_statistics). The schema must
accept every MovieLens layout the ingestion reads and reject values that
would corrupt training.
"""
from __future__ import annotations

import os
import pathlib

import apache_beam as beam
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.utils import io_utils
from tfx_bsl.public import tfxio

from components.example_gen.movielens.executor import ReadMovieLens
from components.lib import features as F
from components.lib.movielens_formats import ML_1M, ML_CSV, Movie, Rating, User
from components.lib.movielens_formats import detect_files
from pipeline import PROJECT_ROOT
from tests.support.examples import to_example

REPO = pathlib.Path(PROJECT_ROOT)
SCHEMA_PATH = REPO / "schemas" / "movielens" / "schema.pbtxt"
SAMPLE_DIR = REPO / "data" / "sample"
ML1M_DIR = REPO.parent / "shared" / "data" / "ml-1m"
ML1M_RATINGS = 20000

USER_FEATURES = set(F.USER_FEATURES)


@pytest.fixture(scope="module")
def schema():
  return io_utils.SchemaReader().read(str(SCHEMA_PATH))


def statistics(tmp_path, make_examples) -> statistics_pb2.DatasetFeatureStatistics:
  """Runs make_examples(pipeline) -> PCollection[serialized tf.Example] and
  TFDV's GenerateStatistics on it; returns the dataset's statistics."""
  out = str(tmp_path / "stats.pb")
  with beam.Pipeline() as pipeline:
    _ = (
        make_examples(pipeline)
        | "Decode" >> tfxio.TFExampleBeamRecord(
            physical_format="inmem", telemetry_descriptors=["test"]).BeamSource()
        | "Stats" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
        | "Write" >> tfdv.WriteStatisticsToBinaryFile(out))
  stats = tfdv.load_stats_binary(out)
  assert len(stats.datasets) == 1
  return stats.datasets[0]


def ingested(data_dir):
  def make(pipeline):
    return (pipeline | "Read" >> ReadMovieLens(detect_files(str(data_dir))))["examples"]  # pylint: disable=no-value-for-parameter
  return make


def created(examples):
  serialized = [e.SerializeToString() for e in examples]
  return lambda pipeline: pipeline | "Create" >> beam.Create(serialized)


def anomalies_of(dataset_stats, schema) -> dict:
  stats = statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset_stats])
  anomalies = tfdv.validate_statistics(stats, schema)
  found = {name: f"{info.short_description}: "
           + "; ".join(r.description for r in info.reason)
           for name, info in anomalies.anomaly_info.items()}
  if anomalies.HasField("dataset_anomaly_info"):
    found["<dataset>"] = anomalies.dataset_anomaly_info.description
  return found


def feature_names(dataset_stats) -> set:
  return {f.path.step[0] for f in dataset_stats.features}


def valid_examples():
  """A few valid raw examples across the layouts: with and without a user,
  a movie without year and one without genres, whole and half stars."""
  action = Movie("1", "Heat (1995)", ("Action", "Crime", "Thriller"), 1995)
  no_year = Movie("2", "Untitled", ("Documentary",), None)
  no_genre = Movie("3", "Blank (2015)", (), 2015)
  imax = Movie("4", "Space (2010)", ("IMAX", "Children"), 2010)
  user = User("1", "F", 25, "writer", "98107-2117")
  return [
      to_example(Rating("1", "1", 4.0, 978300760), 0, action, user),
      to_example(Rating("1", "2", 0.5, 978300761), 23, no_year, user),
      to_example(Rating("2", "3", 5.0, 978300762), 46, no_genre,
                 User("2", "M", 56, "technician", "T8H1N")),
      to_example(Rating("3", "4", 3.5, 0), 69, imax, None),
  ]


def test_schema_is_curated(schema):
  features = {f.name: f for f in schema.feature}
  assert set(features) == {
      F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP, F.FILE_OFFSET, F.ITEM_TITLE,
      F.ITEM_GENRES, F.ITEM_YEAR, *F.USER_FEATURES}
  for name in (F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP, F.FILE_OFFSET,
               F.ITEM_TITLE):
    assert features[name].presence.min_fraction == 1.0, name
    assert (features[name].value_count.min,
            features[name].value_count.max) == (1, 1), name
  for name in (F.ITEM_YEAR, *F.USER_FEATURES):
    assert features[name].presence.min_fraction == 0.0, name
    assert features[name].presence.min_count == 0, name
  genres = tfdv.get_domain(schema, F.ITEM_GENRES)
  assert len(genres.value) == 20 and {"IMAX", "Children", "Children's"} <= set(
      genres.value)


def test_small_valid_examples_have_no_anomalies(tmp_path, schema):
  stats = statistics(tmp_path, created(valid_examples()))
  assert anomalies_of(stats, schema) == {}


def test_embedded_sample_has_no_anomalies(tmp_path, schema):
  assert detect_files(str(SAMPLE_DIR)).format is ML_1M
  stats = statistics(tmp_path, ingested(SAMPLE_DIR))
  assert stats.num_examples > 60000
  # The sample has users: the user features were validated, not skipped.
  assert USER_FEATURES <= feature_names(stats)
  assert anomalies_of(stats, schema) == {}


def test_rating_out_of_range_is_an_anomaly(tmp_path, schema):
  movie = Movie("9", "Nine (1999)", ("Drama",), 1999)
  bad = to_example(Rating("9", "9", 7.0, 978300770), 99, movie, None)
  stats = statistics(tmp_path, created(valid_examples() + [bad]))
  found = anomalies_of(stats, schema)
  assert set(found) == {F.RATING}, found
  assert "7" in found[F.RATING]


def test_unknown_genre_is_an_anomaly(tmp_path, schema):
  movie = Movie("9", "Nine (1999)", ("Drama", "Cyberpunk"), 1999)
  bad = to_example(Rating("9", "9", 3.0, 978300770), 99, movie, None)
  stats = statistics(tmp_path, created(valid_examples() + [bad]))
  found = anomalies_of(stats, schema)
  assert set(found) == {F.ITEM_GENRES}, found
  assert "Cyberpunk" in found[F.ITEM_GENRES]


def test_csv_format_without_users_has_no_anomalies(tmp_path, schema):
  data = tmp_path / "ml-latest-small"
  data.mkdir()
  (data / "ratings.csv").write_text(
      "userId,movieId,rating,timestamp\n"
      "1,1,4.0,964982703\n"
      "1,3,0.5,964981247\n"
      "2,2,5.0,964982224\n"
      "2,4,3.5,964983815\n"
      "3,1,2.5,964982931\n", encoding="utf-8")
  (data / "movies.csv").write_text(
      "movieId,title,genres\n"
      "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
      '2,"American President, The (1995)",Comedy|Drama|Romance\n'
      "3,Hyperspace (2018),(no genres listed)\n"
      "4,Cosmos,Documentary|IMAX\n", encoding="utf-8")
  assert detect_files(str(data)).format is ML_CSV
  stats = statistics(tmp_path, ingested(data))
  assert stats.num_examples == 5
  # No users file: the user features are absent from every example.
  assert not USER_FEATURES & feature_names(stats)
  assert anomalies_of(stats, schema) == {}


def test_real_ml1m_head_has_no_anomalies(tmp_path, schema):
  if not (ML1M_DIR / "ratings.dat").exists():
    pytest.skip(f"real ML-1M not available at {ML1M_DIR} (shared/data/ml-1m "
                "beside the repository)")
  data = tmp_path / "ml-1m-head"
  data.mkdir()
  # Nothing derived from ML-1M may be committed: the head stays in tmp_path.
  with open(ML1M_DIR / "ratings.dat", "rb") as src, open(
      data / "ratings.dat", "wb") as dst:
    for _, line in zip(range(ML1M_RATINGS), src):
      dst.write(line)
  for name in ("movies.dat", "users.dat"):
    os.symlink(ML1M_DIR / name, data / name)
  stats = statistics(tmp_path, ingested(data))
  assert stats.num_examples == ML1M_RATINGS
  assert USER_FEATURES <= feature_names(stats)
  assert anomalies_of(stats, schema) == {}


def test_infer_schema_regenerates_a_starting_point(tmp_path, schema):
  """`recsys infer-schema` (the documented regeneration) covers the same
  features as the curated schema."""
  from pipeline.cli import schema as schema_tools  # pylint: disable=import-outside-toplevel
  data = tmp_path / "data"
  data.mkdir()
  for name in ("movies.dat", "users.dat"):
    (data / name).write_bytes((SAMPLE_DIR / name).read_bytes())
  with open(SAMPLE_DIR / "ratings.dat", "rb") as f:
    lines = f.readlines()[:2000]
  # One bad line and one line twice: left out, and said so.
  (data / "ratings.dat").write_bytes(b"".join(
      lines + [b"1::1::x::978300760\n", lines[0]]))
  # A second layout beside: the option picks one.
  (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
  (data / "movies.csv").write_text("movieId,title,genres\n")
  inferred = schema_tools.infer_schema(
      str(data), str(tmp_path / "inferred.pbtxt"), layout="ml-1m",
      duplicates="first")
  assert inferred.examples == 2000
  assert inferred.left_out["malformed"][0] == 1
  assert f"ratings.dat:{len(lines) + 1}:" in inferred.left_out["malformed"][1][0]
  assert inferred.left_out["duplicate_interactions"][0] == 1
  schema_found = tfdv.load_schema_text(inferred.path)
  assert {f.name for f in schema_found.feature} == {
      f.name for f in schema.feature}
