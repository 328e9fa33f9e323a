"""`recsys runs`: one row per run, read from MLMD; each run's context
records the config it ran with."""
import pytest

from components.model.export import signature_names as names
from pipeline.results import outputs
from pipeline.results import runs as pipeline_runs
from tests.support.pipeline_runs import COMPONENTS, RERUN, RESOLVERS


def test_runs_lists_each_run_from_mlmd(sample_runs, beam_run):
  config, first = sample_runs.config, sample_runs.first
  rows = pipeline_runs.list_runs(config)
  assert len(rows) == 3
  same = first["config"].digest()
  other = sample_runs.other_runner["config"].digest()
  assert other != same
  cached = (0, len(COMPONENTS) - len(RERUN), len(COMPONENTS) - len(RESOLVERS))
  for row, digest, cached in zip(rows, (same, same, other), cached):
    assert row["digest"] == digest and row["encoder"] == "attention"
    assert (row["components"], row["cached"]) == (len(COMPONENTS), cached)
    assert row["hit_rate@10"] == first["metrics"][names.SCORES]["hit_rate@10"]
    assert row["rmse"] == pytest.approx(
        first["ranking"]["metrics"][names.RATING]["rmse"], abs=1e-6)
    assert row["blessed"] is True
    assert row["two_stage_hit_rate@10"] == first["ranker"]["metrics"][
        names.SCORES]["hit_rate@10"]
    # The cached runs' model is the first run's push.
    assert row["pushed"] == first["pushed"]
  assert rows[0]["started"] <= rows[1]["started"] <= rows[2]["started"]
  assert [row["status"] for row in rows] == ["complete"] * 3
  table = pipeline_runs.format_runs(rows).splitlines()
  assert table[0].split()[:5] == ["run", "started", "(UTC)", "status",
                                  "config"]
  assert table[2].split()[0] == rows[1]["run"]
  assert table[2].split()[-2:] == [
      f"{len(COMPONENTS) - len(RERUN)}/{len(COMPONENTS)}", first["pushed"]]
  (beam,) = pipeline_runs.list_runs(beam_run.config)
  assert beam["digest"] == beam_run.summary["config"].digest() != same
  # Neither the rating stage nor the ranker.
  assert beam["rmse"] is None and beam["two_stage_hit_rate@10"] is None
  assert beam["pushed"] == beam_run.summary["pushed"]


def test_each_run_context_records_its_whole_config(sample_runs):
  _, found = outputs.pipeline_runs(sample_runs.config)
  recorded = [outputs.recorded_config(context) for context, _ in found]
  assert [c.to_json() for c in recorded] == [
      run["config"].to_json() for run in (
          sample_runs.first, sample_runs.second, sample_runs.other_runner)]


def _store_with_run(states):
  """An in-memory MLMD store with one run of nodes A, B, C... in `states`."""
  # pylint: disable=import-outside-toplevel
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2 as pb
  config = pb.ConnectionConfig()
  config.fake_database.SetInParent()
  store = metadata_store.MetadataStore(config)
  node_type = store.put_context_type(pb.ContextType(name="node"))
  execution_type = store.put_execution_type(pb.ExecutionType(name="step"))
  executions = []
  for i, state in enumerate(states):
    node = chr(ord("A") + i)
    [context_id] = store.put_contexts([pb.Context(
        type_id=node_type, name=f"recsys.{node}")])
    [execution_id] = store.put_executions([pb.Execution(
        type_id=execution_type, last_known_state=state)])
    store.put_attributions_and_associations(
        [], [pb.Association(context_id=context_id, execution_id=execution_id)])
    executions.append(store.get_executions_by_id([execution_id])[0])
  return store, executions


@pytest.mark.parametrize("states, live, ended, status", [
    (("COMPLETE", "CACHED", "COMPLETE"), False, True, "complete"),
    (("COMPLETE", "FAILED"), False, True, "failed in B"),
    (("CACHED", "COMPLETE", "RUNNING"), False, False, "interrupted in C"),
    (("CACHED", "COMPLETE", "RUNNING"), True, False, "running in C"),
    # Killed between two steps: every execution finished, no end recorded.
    (("CACHED", "COMPLETE"), False, False, "interrupted after B"),
    (("CACHED", "COMPLETE"), True, False, "running after B"),
])
def test_a_run_says_where_it_stopped(states, live, ended, status):
  from ml_metadata.proto import metadata_store_pb2 as pb  # pylint: disable=import-outside-toplevel
  store, executions = _store_with_run(
      [getattr(pb.Execution, s) for s in states])
  assert pipeline_runs.run_status(store, executions, live, ended) == status
