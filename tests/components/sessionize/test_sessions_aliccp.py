"""Ali-CCP sessions: a user's clicks in file order, with the item's side
features at every context position and the user's features."""
import collections
import json
import os

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
import pytest
import tensorflow as tf

from components.example_gen.aliccp import executor as G
from components.lib import aliccp_format as A
from components.lib import features as F
from components.lib import session_data as D
from components.lib.settings import SessionConfig
from components.sessionize.sessions import CATALOG, NAMESPACE
from components.sessionize.sessions import SessionizeExamples
from data import make_aliccp


def decode(record):
  out = {}
  for name, feature in tf.train.Example.FromString(record).features.feature.items():
    kind = feature.WhichOneof("kind")
    out[name] = list(getattr(feature, kind).value) if kind else []
  return out


def read(path):
  return [r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(path))]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("aliccp"))
  make_aliccp.generate(os.path.join(root, "data"), impressions=4000, seed=3)
  with beam.Pipeline() as p:
    _ = (p | G.ReadAliCCP(A.detect_files(os.path.join(root, "data")))  # pylint: disable=no-value-for-parameter
         )["examples"] | beam.io.WriteToTFRecord(os.path.join(root, "raw"))
  raw = read(os.path.join(root, "raw*"))
  pipeline = beam.Pipeline()
  out = (pipeline | beam.Create([(0, r) for r in raw])
         | SessionizeExamples(  # pylint: disable=no-value-for-parameter
             SessionConfig(max_context_length=5), D.ALICCP,
             os.path.join(root, "spill"), 4))
  for split in F.SPLITS:
    _ = out[split] | f"W{split}" >> beam.io.WriteToTFRecord(
        os.path.join(root, split))
  _ = out[CATALOG] | beam.io.WriteToText(
      os.path.join(root, "catalog"), shard_name_template="")
  result = pipeline.run()
  result.wait_until_finish()
  counters = {c.key.metric.name: c.result for c in result.metrics().query(
      MetricsFilter().with_namespace(NAMESPACE))["counters"]}
  examples = {s: [decode(r) for r in read(os.path.join(root, s + "*"))]
              for s in F.SPLITS}
  with open(os.path.join(root, "catalog"), encoding="utf-8") as f:
    catalog = json.load(f)
  return [decode(r) for r in raw], examples, counters, catalog


def clicks_by_user(raw):
  users = collections.defaultdict(list)
  for e in raw:
    if e[G.CLICK] == [1]:
      split = D.ALICCP_SPLITS.index(e[G.SOURCE_SPLIT][0].decode())
      users[str(e["user_id"][0]).encode()].append(
          ((split, e[G.SAMPLE_ID][0]), e))
  return {u: [e for _, e in sorted(c, key=lambda c: c[0])]
          for u, c in users.items()}


def test_a_users_timeline_is_their_clicks_in_file_order(sessions):
  raw, examples, counters, _ = sessions
  users = clicks_by_user(raw)
  assert counters["impressions_not_clicked"] == sum(
      e[G.CLICK] != [1] for e in raw)
  tested = 0
  for e in examples[F.TEST]:
    clicks = users[e[F.USER_ID][0]]
    timeline = [str(c["item_id"][0]).encode() for c in clicks]
    assert e[F.HISTORY_ITEM_ID] + e[F.LABEL_ITEM_ID] == timeline
    tested += 1
  kept = [u for u, c in users.items() if len(c) >= 3]
  assert tested == len(kept) == counters["users"] > 10
  assert counters["short_users_dropped"] == len(users) - len(kept)


def test_context_positions_carry_the_items_side_features(sessions):
  raw, examples, _, catalog = sessions
  side = {}
  for e in raw:
    side.setdefault(str(e["item_id"][0]).encode(), {
        name: str(e[field][0]).encode() for name, field in D.ALICCP_ITEM})
  checked = 0
  for split in F.SPLITS:
    for e in examples[split]:
      for position, item in enumerate(e[F.CONTEXT_ITEM_ID]):
        for name, _ in D.ALICCP_ITEM:
          assert e[name][position] == side[item][name]
        checked += 1
      assert len(e[F.CONTEXT_ITEM_ID]) <= 5
  assert checked > 100
  item = next(iter(catalog))
  assert catalog[item] == {name[len("context_"):]: side[item.encode()][name]
                           .decode() for name, _ in D.ALICCP_ITEM}


def test_user_features_are_strings_of_the_feature_ids(sessions):
  raw, examples, _, _ = sessions
  users = clicks_by_user(raw)
  for e in examples[F.TRAIN][:50]:
    first = users[e[F.USER_ID][0]][0]
    for name in D.ALICCP_USER:
      assert e[name] == [str(v).encode() for v in first[name]]
