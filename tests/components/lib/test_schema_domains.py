"""The curated schemas' domains, checked line by line: every domain a
schema sets is checked on every feature the parsers write."""
import pytest
import tensorflow as tf

from components.example_gen.aliccp import executor as aliccp_executor
from components.example_gen.movielens import executor as movielens_executor
from components.lib import aliccp_format as A
from components.lib import movielens_formats as M
from components.lib.ingestion import MalformedLineError
from components.lib.schema_domains import SchemaDomains
from pipeline.dag.pipeline import schema_file


def _written(serialized: bytes):
  return tf.train.Features.FromString(serialized).feature


def _int(value):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def _float(value):
  return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def _bytes(value):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))


def _movielens_features():
  """Every feature the MovieLens parsers write, from one line each."""
  features = {}
  for serialized in (
      movielens_executor.rating_features(
          M.parse_1m_rating("1::2::3::978300760"), 0),
      movielens_executor.movie_features(
          M.parse_1m_movie("2::Heat (1995)::Action|Crime")),
      movielens_executor.user_features(M.parse_1m_user("1::F::1::10::48067"))):
    features.update(_written(serialized))
  return features


def _feature_list(known) -> str:
  """A feature_num and list with one entry of every field."""
  entries = [f"{field}\x02{i + 1}\x030.5" for i, field in enumerate(known)]
  return f"{len(entries)},{chr(1).join(entries)}"


def _aliccp_features():
  skeleton = A.parse_skeleton(f"1,1,0,ab,{_feature_list(A.SKELETON_FIELDS)}")
  common = A.parse_common_features(f"ab,{_feature_list(A.USER_FIELDS)}")
  features = dict(_written(aliccp_executor.user_features(common)))
  features.update(_written(aliccp_executor.impression_features("train",
                                                                skeleton)))
  return features


@pytest.mark.parametrize("dataset, written", [
    ("movielens", _movielens_features), ("aliccp", _aliccp_features)])
def test_every_domain_of_the_schema_is_checked_on_each_line(dataset, written):
  domains = SchemaDomains.read(schema_file(dataset))
  features = written()
  restricted = set(domains.ranges) | set(domains.vocabularies)
  assert restricted, dataset
  # The parsers write every feature the schema restricts, so each domain
  # applies to a line (a schema domain on a feature no line has would only
  # be checked by ExampleValidator, without a line to show).
  assert restricted <= set(features), restricted - set(features)
  domains.check(features)  # the sample lines are within every domain
  for name, (low, high) in domains.ranges.items():
    kind = features[name].WhichOneof("kind")
    make = _int if kind == "int64_list" else _float
    step = 1 if kind == "int64_list" else 0.25
    for bound, outside in ((low, -step), (high, step)):
      if bound is None:
        continue
      domains.check({name: make(bound)})
      with pytest.raises(MalformedLineError, match=f"^{name} "):
        domains.check({name: make(bound + outside)})
  for name, (domain, allowed) in domains.vocabularies.items():
    domains.check({name: _bytes(sorted(allowed)[0])})
    with pytest.raises(MalformedLineError, match=f"not in the domain "
                       f"'{domain}' of schemas/{dataset}/schema.pbtxt"):
      domains.check({name: _bytes("no such value")})


def test_messages_name_the_value_and_the_bound():
  domains = SchemaDomains.read(schema_file("movielens"))
  with pytest.raises(MalformedLineError) as raised:
    domains.check({"rating": _float(6.0)})
  assert str(raised.value) == (
      "rating 6 is above 5, the maximum in schemas/movielens/schema.pbtxt")
  with pytest.raises(MalformedLineError, match="timestamp -1 is below 0"):
    domains.check({"timestamp": _int(-1)})
