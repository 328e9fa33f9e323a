"""The executor of Sessionize: checks the validator's verdict, runs the
sessionization (sessions.py) with Beam, and writes the examples, their
schema, the item catalog and a report of what was kept and dropped."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List

from absl import logging
import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
import tensorflow as tf
from tensorflow_transform.tf_metadata import schema_utils
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.artifacts import ItemCatalog
from components.lib import disk_group
from components.lib import features as F
from components.lib import layout
from components.lib import settings
from components.lib.session_data import session_data
from components.sessionize.anomalies import (DataValidationError,
                                             raise_on_anomalies,
                                             raise_on_drift)
from components.sessionize.sessions import (CATALOG, NAMESPACE,
                                            SessionizeExamples, feature_spec)

SETTINGS = "settings"


def artifact_span(artifact: types.Artifact) -> int:
  """The span TFX's ExampleGen driver put on an Examples artifact (0 when
  it has none)."""
  if artifact.has_custom_property(example_gen_utils.SPAN_PROPERTY_NAME):
    return artifact.get_int_custom_property(
        example_gen_utils.SPAN_PROPERTY_NAME)
  return 0


@dataclasses.dataclass(frozen=True)
class SessionizeSettings(settings.StepSettings):
  """What Sessionize reads of the run config: the data set and its grouping,
  the session settings, and the slice settings of the evaluation."""
  data: settings.DataConfig
  session: settings.SessionConfig
  eval: settings.SliceConfig


class Executor(base_beam_executor.BaseBeamExecutor):
  """Checks the validator's verdict, then sessionizes with Beam."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    if input_dict.get("anomalies"):
      raise_on_anomalies(artifact_utils.get_single_instance(
          input_dict["anomalies"]))
    if input_dict.get("drift"):
      raise_on_drift(artifact_utils.get_single_instance(input_dict["drift"]))
    step = SessionizeSettings.from_json(exec_properties[SETTINGS])
    params = step.session
    data = session_data(step.data.dataset)
    # One Examples artifact per span (the pipeline's span window).
    span_of_dir = {}
    for artifact in input_dict["examples"]:
      for split in artifact_utils.decode_split_names(artifact.split_names):
        span_of_dir[artifact_utils.get_split_uri([artifact], split)] = (
            artifact_span(artifact))
    patterns = [os.path.join(d, "*") for d in sorted(span_of_dir)]
    # Forward evaluation needs a span before the newest.
    spans_read = sorted(set(span_of_dir.values()))
    forward_span = spans_read[-1] if len(spans_read) > 1 else None
    output = artifact_utils.get_single_instance(output_dict["sessions"])
    output.split_names = artifact_utils.encode_split_names(
        list(F.SESSION_SPLITS))
    catalog = artifact_utils.get_single_instance(output_dict["catalog"])
    catalog.set_string_custom_property(ItemCatalog.DATASET_PROPERTY,
                                       data.name)
    schema = artifact_utils.get_single_instance(output_dict["schema"])

    num_buckets = disk_group.buckets_for_files(
        patterns, step.data.group_bucket_bytes)
    spill_dir = os.path.join(output.uri, "_spill")

    pipeline = self._make_beam_pipeline()
    # One read of every file (no Flatten of reads: disk_group.py says why);
    # each record keeps the span its file belongs to.
    raw = (
        pipeline
        | "Patterns" >> beam.Create(patterns)
        | "Read" >> beam.io.ReadAllFromTFRecord(with_filename=True)
        | "Span" >> beam.Map(
            lambda named: (span_of_dir[os.path.dirname(named[0])], named[1])))
    sessions = raw | "Sessionize" >> SessionizeExamples(  # pylint: disable=no-value-for-parameter
        params, data.name, spill_dir, num_buckets, step.eval, forward_span)
    for split in F.SESSION_SPLITS:
      _ = sessions[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
          os.path.join(artifact_utils.get_split_uri([output], split),
                       "data_tfrecord"),
          file_name_suffix=".gz")
    _ = sessions[CATALOG] | "WriteCatalog" >> beam.io.WriteToText(
        os.path.join(catalog.uri, layout.CATALOG), shard_name_template="")
    result = pipeline.run()
    result.wait_until_finish()
    if tf.io.gfile.exists(spill_dir):
      tf.io.gfile.rmtree(spill_dir)

    counts = {
        c.key.metric.name: c.result for c in result.metrics().query(
            MetricsFilter().with_namespace(NAMESPACE))["counters"]}
    report = {name: int(counts.get(name, 0)) for name in (
        "users", "short_users_dropped", "short_user_interactions_dropped",
        "low_rating_interactions_dropped", "train_interactions",
        "train_examples", "train_context_repeats", "eval_examples",
        "test_examples", "forward_examples", "forward_new_users",
        "ranker_train_examples")
        + ((data.skipped,) if data.skipped else ())}
    report["spans"] = spans_read
    report["forward_span"] = forward_span
    with tf.io.gfile.GFile(os.path.join(catalog.uri, layout.CATALOG)) as f:
      items = json.loads(f.read() or "{}")
    if any(p.slotted for p in data.position_features):
      # Genres beyond the slots are left out of the context (counted here).
      report["items_with_more_genres_than_slots"] = sum(
          len(item.get("genres") or ()) > params.max_item_genres
          for item in items.values())
    report["params"] = dataclasses.asdict(params)
    with tf.io.gfile.GFile(os.path.join(output.uri, layout.SESSIONIZE_REPORT), "w") as f:
      f.write(json.dumps(report, indent=2))
    for name, value in report.items():
      if isinstance(value, int):
        output.set_int_custom_property(name, value)
    logging.info("Sessionized: %s", report)
    if report["users"] == 0:
      raise DataValidationError(
          f"no user has at least {params.min_timeline_length} interactions"
          f"{'' if params.min_rating is None else ' rated >= %s' % params.min_rating};"
          f" nothing to train or evaluate on ({report})")
    io_utils.write_pbtxt_file(
        os.path.join(schema.uri, layout.SESSIONS_SCHEMA),
        schema_utils.schema_from_feature_spec(feature_spec(data)))


