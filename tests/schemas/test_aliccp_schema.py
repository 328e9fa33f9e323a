"""The curated Ali-CCP schema (schemas/aliccp/schema.pbtxt) against data:
the embedded sample passes, broken impressions are anomalies."""
import pathlib

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.utils import io_utils

from components.example_gen.aliccp import executor as G
from components.example_gen.executor import serialized_example
from components.lib import aliccp_format as A
from pipeline import PROJECT_ROOT
from tests.schemas.test_movielens_schema import anomalies_of, statistics

REPO = pathlib.Path(PROJECT_ROOT)
SAMPLE_DIR = REPO / "data" / "aliccp-sample"


@pytest.fixture(scope="module")
def schema():
  return io_utils.SchemaReader().read(
      str(REPO / "schemas" / "aliccp" / "schema.pbtxt"))


def sample_examples(pipeline):
  return (pipeline | "Read" >> G.ReadAliCCP(  # pylint: disable=no-value-for-parameter
      A.detect_files(str(SAMPLE_DIR))))["examples"]


def test_embedded_sample_has_no_anomalies(tmp_path, schema):
  assert anomalies_of(statistics(tmp_path, sample_examples), schema) == {}


def _features(**overrides) -> bytes:
  row = A.SkeletonRow(7, 1, 0, "k", (A.Feature("205", 4100001, 1.0),))
  impression = G.impression_features("train", row)
  user = G.user_features(A.CommonRow("k", (A.Feature("101", 40000, 1.0),)))
  example = tf.train.Example.FromString(
      serialized_example(impression, user))
  for name, value in overrides.items():
    feature = example.features.feature[name]
    if isinstance(value, bytes):
      feature.bytes_list.value[:] = [value]
    else:
      feature.int64_list.value[:] = [value]
  return example.SerializeToString()


@pytest.mark.parametrize("overrides, anomalous", [
    ({G.CLICK: 2}, G.CLICK),
    ({G.SOURCE_SPLIT: b"valid"}, G.SOURCE_SPLIT),
    ({G.SAMPLE_ID: 0}, G.SAMPLE_ID),
])
def test_broken_impressions_are_anomalies(tmp_path, schema, overrides,
                                          anomalous):
  good = [_features() for _ in range(3)]
  bad = _features(**overrides)
  stats = statistics(tmp_path, lambda p: p | beam.Create(good + [bad]))
  assert set(anomalies_of(stats, schema)) == {anomalous}
