"""Ali-CCP ingestion in Beam: the join, the labels, and every dropped row
counted and reported with its file and line."""
import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.example_gen.aliccp import executor as G
from components.example_gen.aliccp.component import AliCCPExampleGen
from components.example_gen.component import executor_properties
from components.lib import aliccp_format as A
from components.lib import duplicates
from components.lib import ingestion
from components.lib import layout
from data import make_aliccp


def append(path, *lines):
  with open(path, "a", encoding="utf-8") as f:
    for line in lines:
      f.write(line + "\n")


def count_lines(path):
  with open(path, encoding="utf-8") as f:
    return sum(1 for _ in f)


# Beam's CoGroupByKey, and the join through spill files in buckets of ~20 KB.
@pytest.fixture(scope="module", params=[0, 20_000], ids=["cogbk", "disk"])
def ingested(tmp_path_factory, request):
  root = str(tmp_path_factory.mktemp("aliccp"))
  make_aliccp.generate(root, impressions=2000, seed=5)
  skeleton = A.skeleton_path(root, "train")
  common = A.common_features_path(root, "train")
  with open(common, encoding="utf-8") as f:
    first_common = f.readline().rstrip("\n")
  key = first_common.split(",", 1)[0]
  item = "205\x024100001\x031.0"
  append(skeleton,
         "900001,1,0,00000000000000aa,1," + item,   # key without common row
         "900002,0,1," + key + ",1," + item,         # inconsistent labels
         "900003,1,0," + key + ",2," + item,         # feature_num says 2
         "900004,1,1," + key + ",1," + item,         # a click that converted
         "900004,1,1," + key + ",1," + item)         # ... on a second line
  append(common, first_common)                     # the key twice
  report = os.path.join(root, "report")
  with beam.Pipeline() as pipeline:
    read = pipeline | G.ReadAliCCP(  # pylint: disable=no-value-for-parameter
        A.detect_files(root), os.path.join(root, "spill"), request.param,
        duplicates_policy="first")
    _ = read | ingestion.WriteIngestionSummary(report)
    _ = read["examples"] | beam.io.WriteToTFRecord(
        os.path.join(root, "examples"), shard_name_template="")
  examples = [tf.train.Example.FromString(r.numpy()) for r in
              tf.data.TFRecordDataset(os.path.join(root, "examples"))]
  return root, ingestion.read_ingestion_summary(report), examples, key


def test_every_dropped_row_is_counted_with_file_and_line(ingested):
  root, summary, examples, key = ingested
  skeleton = A.skeleton_path(root, "train")
  common = A.common_features_path(root, "train")
  total = count_lines(skeleton) - 5 + count_lines(A.skeleton_path(root, "test"))
  unmatched, unmatched_lines, _ = summary.reported[G.UNMATCHED]
  inconsistent, inconsistent_lines, _ = summary.reported[A.INCONSISTENT]
  assert summary.malformed == 1
  assert summary.malformed_lines[0].path == skeleton
  assert summary.malformed_lines[0].line == total - count_lines(
      A.skeleton_path(root, "test")) + 3
  assert "feature_num is 2" in summary.malformed_lines[0].reason
  assert unmatched == 1 and unmatched_lines[0].path == skeleton
  assert "00000000000000aa" in unmatched_lines[0].reason
  definitions = summary.reported[duplicates.DEFINITIONS]
  assert definitions.count == 1
  assert definitions.lines[0].line == count_lines(common)
  assert "data.duplicates=first keeps the first" in definitions.lines[0].reason
  repeated = summary.reported[duplicates.INTERACTIONS]
  assert repeated.count == 1 and repeated.lines[0].line == count_lines(
      skeleton)
  assert "sample_id 900004 is identically on 2 lines" in repeated.lines[
      0].reason
  # The generator's own inconsistent rows plus the injected one.
  assert inconsistent >= 1
  assert any(m.line == total - count_lines(A.skeleton_path(root, "test")) + 2
             for m in inconsistent_lines)
  # Everything else became an example: nothing disappears uncounted.
  assert summary.examples == len(examples) == (
      total + 5 - 1 - 1 - 1 - inconsistent)


def test_examples_join_the_users_features(ingested):
  _, _, examples, key = ingested
  by_id = {(e.features.feature[G.SOURCE_SPLIT].bytes_list.value[0],
            e.features.feature[G.SAMPLE_ID].int64_list.value[0]): e
           for e in examples}
  converted = by_id[(b"train", 900004)].features.feature
  assert converted[G.CLICK].int64_list.value == [1]
  assert converted[G.CONVERSION].int64_list.value == [1]
  assert converted["item_id"].int64_list.value == [4100001]
  assert converted["user_id"].int64_list.value  # from the common features
  some = examples[0].features.feature
  assert len(some["user_categories"].int64_list.value) == len(
      some["user_categories_weight"].float_list.value) >= 1
  assert {b"train", b"test"} == {s for s, _ in by_id}


# In-process, and on Beam's FnApiRunner in multi-processing mode, whose
# Flatten bug (components/lib/disk_group.py) once lost examples here.
@pytest.mark.parametrize("beam_args", [
    [], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]],
    ids=["in_process", "multi_processing"])
def test_executor_joins_on_disk_and_leaves_no_spill_files(tmp_path, beam_args):
  root = str(tmp_path / "data")
  make_aliccp.generate(root, impressions=20_000 if beam_args else 3000, seed=2)
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "out")
  G.Executor(base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=beam_args)).Do(
          {}, {standard_component_specs.EXAMPLES_KEY: [examples]},
          executor_properties(
              AliCCPExampleGen(root, group_bucket_bytes=50_000)))
  assert sorted(os.listdir(examples.uri)) == [
      f"Split-{G.SPLIT}", layout.INGESTION_REPORT]
  with open(os.path.join(examples.uri, layout.INGESTION_REPORT)) as f:
    report = json.load(f)
  written = sum(1 for _ in tf.data.TFRecordDataset(
      tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{G.SPLIT}", "*")),
      compression_type="GZIP"))
  impressions = sum(count_lines(A.skeleton_path(root, s)) for s in A.SPLITS)
  assert written == report["examples"] == impressions - report[A.INCONSISTENT]
  assert examples.get_int_custom_property("num_examples") == written


def test_executor_ingests_the_span_it_is_given(tmp_path):
  """Ali-CCP spans: each span-NN directory holds its own train/ and test/
  files; the execution reads the span TFX's driver resolved (the newest
  without the driver)."""
  root = tmp_path / "data"
  for span, impressions in ((1, 300), (2, 500)):
    make_aliccp.generate(str(root / f"span-0{span}"), impressions=impressions,
                         seed=span)
  component = AliCCPExampleGen(str(root), group_bucket_bytes=0)
  assert '"pattern": "span-{SPAN:2}/*/*.csv"' in component.exec_properties[
      "input_config"]
  for span in (None, 1):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / f"out-{span}")
    properties = executor_properties(component)
    if span is not None:
      properties["span"] = span
    G.Executor(base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=[])).Do(
            {}, {standard_component_specs.EXAMPLES_KEY: [examples]},
            properties)
    with open(os.path.join(examples.uri, layout.INGESTION_REPORT)) as f:
      report = json.load(f)
    expected = root / f"span-0{span or 2}"
    assert report["files"] == [
        A.skeleton_path(str(expected), "test"),
        A.common_features_path(str(expected), "test"),
        A.skeleton_path(str(expected), "train"),
        A.common_features_path(str(expected), "train")], report["files"]
    impressions = sum(count_lines(A.skeleton_path(str(expected), s))
                      for s in A.SPLITS)
    assert report["examples"] == impressions - report[A.INCONSISTENT]
