"""Running the pipeline from this process: LocalDagRunner and BeamDagRunner
on the embedded sample, TFX's cache across re-runs and a change of runner,
the Beam arguments reaching every Beam job, and bad data stopping the run
before training."""
import json
import os
import shutil
import weakref

from apache_beam.utils import shared
import pytest

from components.lib.ingestion import IngestionError
from components.model.export import signature_names as names
from pipeline.config import load_config
from pipeline.runners import local
from tests.support.pipeline_runs import (BEAM_ARGS, BEAM_EXECUTORS, COMPONENTS,
                                         RERUN, RESOLVERS,
                                         RETRIEVAL_COMPONENTS, SAMPLE)


def test_every_component_ran_then_was_cached(sample_runs):
  first, second = sample_runs.first, sample_runs.second
  assert sorted(c["name"] for c in first["components"]) == sorted(COMPONENTS)
  assert not any(c["cached"] for c in first["components"])
  assert sorted(c["name"] for c in second["components"]) == sorted(COMPONENTS)
  for component in second["components"]:
    assert component["cached"] == (component["name"] not in RERUN), component


def test_changing_the_runner_alone_keeps_every_component_cached(sample_runs):
  # The third run differs from the second in `runner` only: no step reads
  # it, so everything but the resolvers (which always run) comes from the
  # cache, the Evaluators and Pushers included, and nothing is pushed again.
  third = sample_runs.other_runner
  assert third["config"].runner == "beam" != sample_runs.config.runner
  assert sorted(c["name"] for c in third["components"]) == sorted(COMPONENTS)
  for component in third["components"]:
    assert component["cached"] == (component["name"] not in RESOLVERS), (
        component)
  assert third["pushed"] == sample_runs.first["pushed"]
  assert third["ranking"]["pushed"] == sample_runs.first["ranking"]["pushed"]


def test_the_run_layout_records_the_resolved_config(sample_runs):
  config = sample_runs.other_runner["config"]
  with open(config.run_config_path) as f:
    assert json.load(f) == json.loads(config.to_json())
  # The optional user group is in (the sample has users), recorded inline.
  assert isinstance(config.model.features, dict)
  with open(config.timings_path) as f:
    assert [t["name"] for t in json.load(f)] == [
        c["name"] for c in sample_runs.other_runner["components"]]
  assert os.path.getsize(config.log_path) > 0


def test_beam_runner_runs_every_component_with_the_beam_arguments(beam_run):
  config, summary, made = beam_run.config, beam_run.summary, beam_run.beam_args
  assert sorted(c["name"] for c in summary["components"]) == sorted(
      RETRIEVAL_COMPONENTS)
  assert not any(c["cached"] for c in summary["components"])
  assert {name for name, _ in made} == BEAM_EXECUTORS
  for name, args in made:
    assert set(BEAM_ARGS) <= set(args), name
  with open(config.run_config_path) as f:
    recorded = json.load(f)
  assert (recorded["runner"], recorded["beam_args"]) == ("beam", BEAM_ARGS)
  assert summary["blessed"] and summary["pushed"]


def test_a_run_leaves_nothing_in_the_temp_directory(beam_run):
  # Each Beam step had TFX build a package of itself in a temp directory
  # (for remote workers); the run removed them with the rest of its scratch.
  for name, args in beam_run.beam_args:
    assert any(a.startswith("--extra_package=") for a in args), name
  assert beam_run.left_in_tempdir == set()


def test_local_and_beam_runners_give_the_same_metrics(sample_runs, beam_run):
  local_metrics = sample_runs.second["metrics"]
  beam = beam_run.summary["metrics"]
  # Beam wrote the examples in another order (two workers); training reads
  # them in a canonical order, so the model and its metrics are the same.
  assert local_metrics.keys() == beam.keys() == {names.SCORES,
                                                 names.POPULARITY_SCORES}
  for output, metrics in local_metrics.items():
    assert metrics.keys() == beam[output].keys()
    for name, value in metrics.items():
      assert beam[output][name] == pytest.approx(value, abs=1e-6), (
          output, name)
  assert beam_run.summary["training"]["history"]["loss"] == (
      sample_runs.second["training"]["history"]["loss"])


@pytest.mark.e2e
def test_a_bad_value_stops_the_run_before_training(tmp_path):
  data = tmp_path / "data"
  shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("ratings.dat"))
  with open(os.path.join(SAMPLE, "ratings.dat"), encoding="latin-1") as f:
    lines = f.readlines()[:3000]
  user, item, _, stamp = lines[10].strip().split("::")
  lines[10] = f"{user}::{item}::9::{stamp}\n"  # ratings go up to 5
  (data / "ratings.dat").write_text("".join(lines), encoding="latin-1")
  config = load_config(values={"data": {"data_dir": str(data)},
                               "output_dir": str(tmp_path / "out")})
  loaded = _loaded_by_a_step()
  # Ingestion checks the schema's domains line by line (ExampleValidator
  # would see it too, without the line).
  with pytest.raises(IngestionError, match=f"{data / 'ratings.dat'}:11: "
                     "rating 9 is above 5"):
    local.run(config)
  assert not os.path.exists(os.path.join(config.pipeline_root, "Trainer"))
  assert not os.path.exists(config.serving_dir)
  # A run, even a failed one, frees what its steps loaded.
  assert loaded() is None


class _Model:
  """Stands for a model a step loads through Beam's Shared cache."""


def _loaded_by_a_step() -> weakref.ref:
  """A model acquired the way TFMA loads one, held only by Beam's cache."""
  model = shared.Shared().acquire(_Model)
  loaded = weakref.ref(model)
  del model
  return loaded


def test_releasing_frees_the_model_beams_cache_keeps_alive():
  """Beam's Shared cache holds the last model acquired (TFMA's) until the
  process ends, where freeing it prints TensorFlow's ignored exceptions."""
  loaded = _loaded_by_a_step()
  assert loaded() is not None
  local._release_loaded_models()  # pylint: disable=protected-access
  assert loaded() is None
