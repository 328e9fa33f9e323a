"""The whole pipeline on the embedded sample, end to end.

On LocalDagRunner one full run and one identical re-run (served from the
cache up to the Trainer; its Evaluator compares the model with the first
run's, now the latest blessed one), plus one run on bad data that
ExampleValidator must stop before training; on BeamDagRunner one run whose
components' Beam jobs get two worker processes, and must give the local
run's metrics. `recsys report` (text and HTML, opened in headless Chromium)
and README's notebook snippet read the local runs' artifacts.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components.lib import features as F
from components.lib.session_data import session_data
from components.model.export import rating as rating_export
from components.model.export import retrieval
from components.model.export import tflite
from components.sessionize.anomalies import DataValidationError
from tfx.dsl.components.base import base_beam_executor

from components.lib import slices
from components.user_modules import evaluation
from pipeline import PROJECT_ROOT
from pipeline.bench import encoders as bench
from pipeline.cli import main as cli
from pipeline.config import ConfigError, load_config
from pipeline.results import report
from pipeline.results import report_html
from pipeline.results import runs as pipeline_runs
from pipeline.runners import local as runner

pytestmark = pytest.mark.e2e

ROOT = PROJECT_ROOT
SAMPLE = os.path.join(ROOT, "data", "sample")
RETRIEVAL_COMPONENTS = [
    "ImportSchemaGen", "MovieLensExampleGen", "StatisticsGen",
    "ExampleValidator", "Sessionize", "Transform", "Trainer",
    "latest_blessed_model", "Evaluator", "TFLitePusher"]
COMPONENTS = RETRIEVAL_COMPONENTS + [
    "rating_trainer", "latest_blessed_rating_model", "rating_evaluator",
    "rating_pusher", "two_stage_evaluator"]
# What a re-run with the same config executes again: the resolvers, which
# now find the first run's blessed models, and what depends on them.
RERUN = {"latest_blessed_model", "Evaluator", "TFLitePusher",
         "latest_blessed_rating_model", "rating_evaluator", "rating_pusher"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  output = tmp_path_factory.mktemp("e2e")
  config = load_config(values={"data": {"data_dir": SAMPLE},
                               "output_dir": str(output),
                               "train": {"epochs": 6},
                               "ranking": {"epochs": 6}})
  first = runner.run(config)
  second = runner.run(config)
  return config, first, second


BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
# The executors that run a Beam job, and so must get BEAM_ARGS.
BEAM_EXECUTORS = {
    "components.movielens_example_gen.Executor",
    "tfx.components.statistics_gen.executor.Executor",
    "components.sessionize.Executor",
    "tfx.components.transform.executor.Executor",
    "tfx.components.evaluator.executor.Executor",
}


@pytest.fixture(scope="module")
def beam_run(tmp_path_factory):
  """The `runs` pipeline on BeamDagRunner with two Beam workers; records the
  Beam arguments each executor makes its pipeline with. Without the ranking
  stage, which adds no Beam job of its own kind (time)."""
  config = load_config(values={"data": {"data_dir": SAMPLE},
                               "output_dir": str(tmp_path_factory.mktemp("beam")),
                               "train": {"epochs": 6}, "runner": "beam",
                               "beam_args": BEAM_ARGS,
                               "ranking": {"enabled": False}})
  made = []
  make = base_beam_executor.BaseBeamExecutor._make_beam_pipeline  # pylint: disable=protected-access

  def recording(executor):
    kind = type(executor)
    made.append((f"{kind.__module__}.{kind.__name__}",
                 list(executor._beam_pipeline_args)))  # pylint: disable=protected-access
    return make(executor)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(base_beam_executor.BaseBeamExecutor, "_make_beam_pipeline",
                  recording)
    summary = runner.run(config)
  return config, summary, made


def test_beam_runner_runs_every_component_with_the_beam_arguments(beam_run):
  config, summary, made = beam_run
  assert sorted(c["name"] for c in summary["components"]) == sorted(
      RETRIEVAL_COMPONENTS)
  assert not any(c["cached"] for c in summary["components"])
  assert {name for name, _ in made} == BEAM_EXECUTORS
  for name, args in made:
    assert set(BEAM_ARGS) <= set(args), name
  with open(os.path.join(config.output_dir, runner.RUN_CONFIG_FILE)) as f:
    recorded = json.load(f)
  assert (recorded["runner"], recorded["beam_args"]) == ("beam", BEAM_ARGS)
  assert summary["blessed"] and summary["pushed"]


def test_local_and_beam_runners_give_the_same_metrics(runs, beam_run):
  local, beam = runs[1]["metrics"], beam_run[1]["metrics"]
  # Beam wrote the examples in another order (two workers); training reads
  # them in a canonical order, so the model and its metrics are the same.
  assert local.keys() == beam.keys() == {retrieval.SCORES,
                                         retrieval.POPULARITY_SCORES}
  for output, metrics in local.items():
    assert metrics.keys() == beam[output].keys()
    for name, value in metrics.items():
      assert beam[output][name] == pytest.approx(value, abs=1e-6), (output, name)
  local_training, beam_training = runs[1]["training"], beam_run[1]["training"]
  assert beam_training["history"]["loss"] == local_training["history"]["loss"]


def test_runs_lists_each_run_from_mlmd(runs, beam_run):
  config, first, second = runs
  rows = pipeline_runs.list_runs(config)
  assert len(rows) == 2
  digest = first["config"].digest()
  for row, cached in zip(rows, (0, len(COMPONENTS) - len(RERUN))):
    assert row["digest"] == digest and row["encoder"] == "attention"
    assert (row["components"], row["cached"]) == (len(COMPONENTS), cached)
    assert row["hit_rate@10"] == first["metrics"][retrieval.SCORES]["hit_rate@10"]
    assert row["rmse"] == pytest.approx(
        first["ranking"]["metrics"][rating_export.RATING]["rmse"], abs=1e-6)
    assert row["blessed"] is True
    # The cached run's model is the first run's push.
    assert row["pushed"] == first["pushed"]
  assert rows[0]["started"] <= rows[1]["started"]
  table = pipeline_runs.format_runs(rows).splitlines()
  assert table[0].split()[:4] == ["run", "started", "(UTC)", "config"]
  assert table[2].split()[0] == rows[1]["run"]
  assert table[2].split()[-2:] == [
      f"{len(COMPONENTS) - len(RERUN)}/{len(COMPONENTS)}", first["pushed"]]
  (beam,) = pipeline_runs.list_runs(beam_run[0])
  assert beam["digest"] == beam_run[1]["config"].digest() != digest
  assert beam["rmse"] is None  # no ranking stage
  assert beam["pushed"] == beam_run[1]["pushed"]


def test_every_component_ran_then_was_cached(runs):
  _, first, second = runs
  assert sorted(c["name"] for c in first["components"]) == sorted(COMPONENTS)
  assert not any(c["cached"] for c in first["components"])
  assert sorted(c["name"] for c in second["components"]) == sorted(COMPONENTS)
  for component in second["components"]:
    assert component["cached"] == (component["name"] not in RERUN), component


def test_rerun_is_evaluated_against_the_latest_blessed_model(runs):
  config, first, second = runs
  found = report.facts(config)
  blessing = found["blessing"]
  # The baseline is the first run's model, which is also the candidate.
  assert blessing["baseline_model"] == first["model"] == second["model"]
  assert blessing["blessed"] and second["blessed"]
  assert blessing["reason"] == (
      "passed: hit_rate@10 {0:.4f} >= {1:.4f}; hit_rate@10 change vs "
      "baseline +0.0000 >= {2:+.4f}".format(
          first["metrics"][retrieval.SCORES]["hit_rate@10"],
          config.eval.min_hit_rate_at_10, -config.eval.max_hit_rate_drop))
  overall = found["slices"][()]
  for name, value in overall[evaluation.DIFF][retrieval.SCORES].items():
    assert np.allclose(value, 0.0), name
  assert overall[evaluation.BASELINE][retrieval.SCORES]["hit_rate@10"] == (
      first["metrics"][retrieval.SCORES]["hit_rate@10"])
  # The first run had no baseline: the lower bound alone.
  first_run = report.facts(config, pipeline_runs.list_runs(config)[0]["run"])
  assert first_run["blessing"]["baseline_model"] is None
  assert first_run["blessing"]["reason"].count(";") == 0


def test_model_beats_most_popular_under_the_protocol(runs):
  _, first, _ = runs
  model = first["metrics"][retrieval.SCORES]
  popular = first["metrics"][retrieval.POPULARITY_SCORES]
  for metrics in (model, popular):
    assert set(metrics) == {"hit_rate@1", "hit_rate@5", "hit_rate@10",
                            "hit_rate@50", "ndcg@10", "example_count"}
    # One test example per sample user (600 users, all with >= 3 ratings).
    assert metrics["example_count"] == 600
    assert metrics["hit_rate@1"] <= metrics["hit_rate@5"] <= metrics[
        "hit_rate@10"] <= metrics["hit_rate@50"]
  assert model["hit_rate@10"] > 2 * popular["hit_rate@10"]
  assert model["ndcg@10"] > 2 * popular["ndcg@10"]
  assert first["blessed"]


def test_pushed_bundle_is_complete_and_versioned(runs):
  config, first, second = runs
  pushed = first["pushed"]
  assert pushed and os.path.dirname(pushed) == config.serving_dir
  # The re-run's model is the one already pushed: no second version.
  assert second["pushed"] == pushed
  assert sorted(os.listdir(config.serving_dir)) == [
      os.path.basename(pushed), "ranking"]
  assert sorted(os.listdir(pushed)) == ["items.json", "metadata.json",
                                        "model.tflite", "saved_model"]
  with open(os.path.join(pushed, "metadata.json")) as f:
    metadata = json.load(f)
  assert metadata["version"] == int(os.path.basename(pushed))
  assert metadata["top_k"] == config.serving.top_k
  assert metadata["metrics"]["model"] == first["metrics"][retrieval.SCORES]
  assert metadata["model_uri"] == first["model"]
  assert metadata["blessing"] == {
      "reason": report.facts(config, pipeline_runs.list_runs(config)[0][
          "run"])["blessing"]["reason"], "baseline_model": None}
  recorded = runs[1]["config"]
  assert metadata["inputs"][F.CONTEXT_ITEM_ID] == {
      "dtype": "string", "shape": [-1, config.session.max_context_length]}
  assert metadata["inputs"][F.CONTEXT_GENRE]["shape"] == [
      -1, config.session.max_context_length * config.session.max_item_genres]
  # The sample has users: the optional user group is in, recorded inline.
  assert F.USER_GENDER in metadata["inputs"]
  assert metadata["outputs"][retrieval.TOP_ITEM_IDS]["dtype"] == "string"
  assert metadata["tflite_bytes"] == os.path.getsize(
      os.path.join(pushed, "model.tflite"))
  assert metadata["config"] == json.loads(recorded.to_json())
  assert isinstance(metadata["config"]["model"]["features"], dict)
  with open(os.path.join(config.output_dir, runner.RUN_CONFIG_FILE)) as f:
    assert json.load(f) == json.loads(recorded.to_json())


def _test_examples(config, limit=60):
  """Raw test-split session examples: {feature name: list of values}."""
  (sessions_dir,) = [
      os.path.join(config.pipeline_root, "Sessionize", "sessions", d)
      for d in os.listdir(os.path.join(config.pipeline_root, "Sessionize",
                                       "sessions"))]
  pattern = os.path.join(sessions_dir, "Split-test", "*")
  examples = []
  for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern),
                                        compression_type="GZIP").take(limit):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    examples.append({
        name: [v.decode() if isinstance(v, bytes) else v
               for v in getattr(f, f.WhichOneof("kind")).value]
        for name, f in feature.items()})
  return examples


def test_tflite_top_10_matches_saved_model(runs):
  config, first, _ = runs
  pushed = first["pushed"]
  loaded = tf.saved_model.load(os.path.join(pushed, "saved_model"))
  serve = loaded.signatures["serving_default"]
  recommender = tflite.TFLiteRecommender(os.path.join(pushed, "model.tflite"))
  slots = config.session.max_item_genres
  examples = _test_examples(config)
  assert len(examples) == 60
  for example in examples:
    # The SavedModel gets the session example's own values, padded.
    inputs = {}
    for name, spec in serve.structured_input_signature[1].items():
      values = example.get(name, [])
      width = spec.shape[-1]
      fill = "" if spec.dtype == tf.string else 0
      inputs[name] = tf.constant([values + [fill] * (width - len(values))],
                                 spec.dtype)
    saved = serve(**inputs)
    # The TFLite model gets them the way an app holds them.
    items = example[F.CONTEXT_ITEM_ID]
    genres = example[F.CONTEXT_GENRE]
    ids, scores = recommender.recommend(
        items, {F.CONTEXT_RATING: example[F.CONTEXT_RATING],
                F.CONTEXT_GENRE: [[g for g in genres[i * slots:(i + 1) * slots]
                                   if g] for i in range(len(items))],
                F.CONTEXT_YEAR: example[F.CONTEXT_YEAR]},
        user={name: example[name][0] for name in F.USER_FEATURES
              if name in example})
    want = [v.decode() for v in saved[retrieval.TOP_ITEM_IDS].numpy()[0][:10]]
    assert ids[:10] == want
    np.testing.assert_allclose(scores[:10],
                               saved[retrieval.TOP_SCORES].numpy()[0][:10],
                               rtol=1e-4, atol=1e-4)
    assert not set(ids) & set(items)


def test_anomalies_stop_the_run_before_training(tmp_path):
  data = tmp_path / "data"
  shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("ratings.dat"))
  with open(os.path.join(SAMPLE, "ratings.dat"), encoding="latin-1") as f:
    lines = f.readlines()[:3000]
  user, item, _, stamp = lines[10].strip().split("::")
  lines[10] = f"{user}::{item}::9::{stamp}\n"  # ratings go up to 5
  (data / "ratings.dat").write_text("".join(lines), encoding="latin-1")
  config = load_config(values={"data": {"data_dir": str(data)},
                               "output_dir": str(tmp_path / "out")})
  with pytest.raises(DataValidationError, match="'rating'"):
    runner.run(config)
  assert not os.path.exists(os.path.join(config.pipeline_root, "Trainer"))
  assert not os.path.exists(config.serving_dir)


def test_recommend_and_latency_commands_use_the_pushed_model(runs):
  config, first, _ = runs
  with open(os.path.join(first["pushed"], "items.json"), encoding="utf-8") as f:
    catalog = json.load(f)
  history = sorted(catalog, key=int)[:3]
  recsys = [sys.executable, "-m", "pipeline.cli"]
  result = subprocess.run(
      recsys + ["recommend", "--model", config.serving_dir, "--history",
                ",".join(history), "--top", "5"],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
  lines = result.stdout.strip().splitlines()
  assert lines[0] == f"model {first['pushed']}"
  ranked = [line.split() for line in lines[1:]]
  assert [r[0] for r in ranked] == ["1.", "2.", "3.", "4.", "5."]
  for row in ranked:
    assert row[1] in catalog and row[1] not in history
    assert " ".join(row[3:]) == catalog[row[1]]["title"]
  result = subprocess.run(
      recsys + ["latency", "--model", first["pushed"], "--queries", "50"],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
  assert "1 thread(s), 50 queries" in result.stdout
  assert "median" in result.stdout


def test_bench_facts_and_table_of_a_pushed_model(runs):
  _, first, _ = runs
  facts = bench.tflite_facts(first["pushed"], queries=20, processes=2)
  assert facts["tflite_bytes"] == os.path.getsize(
      os.path.join(first["pushed"], "model.tflite"))
  # float16 weights: the embedding tables (most of the file) halve.
  assert facts["tflite_float16_bytes"] < 0.7 * facts["tflite_bytes"]
  assert 0 < facts["latency_median_ms"] <= facts["latency_p90_ms"]
  runs_ms = facts["latency_process_medians_ms"]
  assert len(runs_ms) == 2
  assert min(runs_ms) <= facts["latency_median_ms"] <= max(runs_ms)
  row = {"encoder": "attention", "context_length": 50, "train_minutes": 1.0,
         "epochs": 3, "train_predictions_per_second": 1234.5,
         **{m: 0.1 for m in bench.METRICS}, **facts}
  table = bench.markdown({"date": "2026-11-23", "machine": "m", "data_dir": "d",
                          "bench_minutes": 61.0,
                          "rows": [row], "most_popular": first["metrics"][
                              retrieval.POPULARITY_SCORES]})
  lines = table.strip().splitlines()
  assert lines[0].endswith("the whole bench took 61 min")
  assert lines[-2].startswith("| attention (L=50) | 0.1000 |")
  assert lines[-1].startswith(
      f"| most popular | {first['metrics'][retrieval.POPULARITY_SCORES]['hit_rate@1']:.4f}")


def test_report_text_of_the_latest_run(runs, capsys):
  config, first, second = runs
  assert cli.main(["report", "--output-dir", config.output_dir]) == 0
  text = capsys.readouterr().out
  rows = pipeline_runs.list_runs(config)
  assert text.startswith(f"recsys report: run {rows[1]['run']} of "
                         f"{config.output_dir}")
  lines = text.splitlines()
  model = first["metrics"][retrieval.SCORES]
  popular = first["metrics"][retrieval.POPULARITY_SCORES]
  # Model, most popular and delta, then the baseline model and TFMA's diff.
  (hr10,) = [line.split() for line in lines
             if line.split()[:1] == ["HR@10"] and "slice" not in line]
  assert hr10 == ["HR@10", f"{model['hit_rate@10']:.4f}",
                  f"{popular['hit_rate@10']:.4f}",
                  f"{model['hit_rate@10'] - popular['hit_rate@10']:+.4f}",
                  f"{model['hit_rate@10']:.4f}", "+0.0000"]
  assert f"baseline: the latest blessed model" in text
  # Every slice feature of the sample (it has demographics), with its users
  # adding up to the 600 test users.
  found = report.facts(config)
  per_feature = {}
  for feature, _, roles in report.slice_rows(found):
    per_feature[feature] = per_feature.get(feature, 0) + int(report.count(roles))
  assert per_feature == {name: 600 for name in slices.FEATURES}
  assert "slice_target_popularity" in text and "  head " in text
  assert "Blessing: blessed" in text and found["blessing"]["reason"] in text
  assert f"Pushed: {first['pushed']}" in text
  tflite = os.path.getsize(os.path.join(first["pushed"], "model.tflite"))
  assert f"model.tflite {tflite / 2**20:.2f} MiB" in text
  assert "anomalies: none" in text
  assert "ratings: 64162 interactions, 600 users" in text


def test_report_of_an_unknown_run_names_the_known_ones(runs):
  config, _, _ = runs
  with pytest.raises(ConfigError, match="no run 'nope'.*latest runs: "):
    report.facts(config, "nope")


CHECK_PLOTS = """<script>
window.addEventListener("load", () => {
  const shown = [...document.querySelectorAll("figure img.plot")].filter(
      img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100);
  document.body.setAttribute("data-rendered",
                             shown.map(img => img.closest("figure").id).join(","));
});
</script></body>"""


def test_html_report_renders_every_plot_in_chromium(runs, tmp_path, capsys):
  config, _, _ = runs
  chromium = shutil.which("chromium") or shutil.which("chromium-browser")
  if chromium is None:
    pytest.skip("headless Chromium is not installed (.ci/run installs "
                "Debian's chromium)")
  page = tmp_path / "report.html"
  assert cli.main(["report", "--output-dir", config.output_dir, "--html",
                   str(page)]) == 0
  assert capsys.readouterr().out.rstrip().endswith(f"wrote {page}")
  document = page.read_text(encoding="utf-8")
  # Self-contained: nothing to fetch.
  assert "http://" not in document and "https://" not in document
  assert 'class="missing"' not in document
  # Chromium loads the page (with a script that lists the decoded plots).
  checked = tmp_path / "checked.html"
  checked.write_text(document.replace("</body>", CHECK_PLOTS),
                     encoding="utf-8")
  dom = subprocess.run(
      [chromium, "--headless", "--no-sandbox", "--disable-gpu",
       "--disable-dev-shm-usage", "--virtual-time-budget=10000",
       "--dump-dom", checked.as_uri()],
      capture_output=True, text=True, timeout=120, check=True).stdout
  rendered = dom.split('data-rendered="', 1)[1].split('"', 1)[0].split(",")
  assert rendered == [plot_id for plot_id, _, _ in report_html.PLOTS]


def test_readme_notebook_snippet_opens_the_artifacts(runs):
  """README's notebook cell runs on the run's artifacts (the widgets it
  draws need Jupyter; outside one they are built, not shown)."""
  config, _, _ = runs
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  snippet = readme.split("```python\n# notebook\n", 1)[1].split("```", 1)[0]
  snippet = snippet.replace('"output/sample"', repr(config.output_dir))
  namespace = {}
  exec(compile(snippet, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  result, stats = namespace["result"], namespace["stats"]
  assert any(dict(key).get(slices.TARGET_POPULARITY) == "head"
             for key, _ in result.slicing_metrics)
  assert stats.datasets[0].num_examples == 64162


# --- The ranking stage ----------------------------------------------------------------

def _test_records(config):
  """The serialized test-split session examples."""
  (sessions_dir,) = [
      os.path.join(config.pipeline_root, "Sessionize", "sessions", d)
      for d in os.listdir(os.path.join(config.pipeline_root, "Sessionize",
                                       "sessions"))]
  return tf.data.TFRecordDataset(
      tf.io.gfile.glob(os.path.join(sessions_dir, "Split-test", "*")),
      compression_type="GZIP")


def test_rating_model_beats_both_baselines_and_is_pushed(runs):
  config, first, second = runs
  ranking = first["ranking"]
  metrics = ranking["metrics"]
  model = metrics[rating_export.RATING]
  item_mean = metrics[rating_export.ITEM_MEAN_RATING]
  global_mean = metrics[rating_export.GLOBAL_MEAN_RATING]
  assert model["example_count"] == 600  # the retrieval stage's test users
  assert model["rmse"] < item_mean["rmse"] and model["rmse"] < global_mean[
      "rmse"]
  assert model[evaluation.RMSE_GAIN] == pytest.approx(
      item_mean["rmse"] - model["rmse"], abs=1e-6)
  # TFMA's RMSE and MAE, recomputed from the pushed SavedModel's outputs.
  pushed = ranking["pushed"]
  assert os.path.dirname(pushed) == config.ranking_serving_dir
  loaded = tf.saved_model.load(os.path.join(pushed, "saved_model"))
  predicted, labels = [], []
  for batch in _test_records(config).batch(128):
    predicted.append(loaded.signatures["evaluate"](examples=batch)[
        rating_export.RATING].numpy())
    labels.append([tf.train.Example.FromString(r).features.feature[
        F.LABEL_RATING].float_list.value[0] for r in batch.numpy()])
  errors = np.concatenate(predicted) - np.concatenate(labels)
  assert model["rmse"] == pytest.approx(np.sqrt(np.mean(errors ** 2)),
                                        rel=1e-4)
  assert model["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-4)
  assert model["mean_squared_error"] == pytest.approx(model["rmse"] ** 2,
                                                      rel=1e-4)
  assert ranking["blessed"] and ranking["blessing_reason"].startswith(
      "passed: rmse_gain_over_item_mean")
  with open(os.path.join(pushed, "metadata.json")) as f:
    metadata = json.load(f)
  assert metadata["metrics"]["model"] == model
  assert metadata["metrics"]["item_mean"] == item_mean
  assert metadata["inputs"][rating_export.CANDIDATE_ITEM_ID] == {
      "dtype": "string", "shape": [-1, config.serving.top_k]}
  assert metadata["outputs"][rating_export.RATINGS]["dtype"] == "float32"
  # The re-run compares with the first rating model (itself): not re-pushed.
  assert second["ranking"]["pushed"] == pushed
  assert os.listdir(config.ranking_serving_dir) == [os.path.basename(pushed)]
  assert "rmse change vs baseline +0.0000 <= +0.0100" in second["ranking"][
      "blessing_reason"]


def test_two_stage_evaluation_beside_retrieval_alone(runs):
  config, first, _ = runs
  found = first["two_stage"]
  assert found["users"] == 600
  # Retrieval alone, ranked by this component, is what TFMA measured.
  retrieval = first["metrics"][retrieval.SCORES]
  for name, value in found["retrieval"].items():
    assert value == pytest.approx(retrieval[name], abs=1e-9), name
  assert sorted(found["two_stage"], key=int) == [
      str(n) for n in config.ranking.two_stage_candidates]
  # Re-ordering the top 10 keeps its hits; a larger N can only let more in
  # than the top 10 had or push them out, never beyond N.
  top10 = found["two_stage"]["10"]
  assert top10["hit_rate@10"] == pytest.approx(
      found["retrieval"]["hit_rate@10"])
  for metrics in found["two_stage"].values():
    assert metrics["hit_rate@1"] <= metrics["hit_rate@5"] <= metrics[
        "hit_rate@10"]


def test_recommend_two_stage_reorders_by_the_rating_model(runs, capsys):
  config, first, _ = runs
  assert cli.main(["recommend", "--model", config.serving_dir, "--history",
                   "1,2,3", "--ratings", "5,4,1", "--two-stage", "--top",
                   "8"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[0] == f"model {first['pushed']}"
  assert lines[1].startswith(f"rating model {first['ranking']['pushed']}: "
                             f"the top {config.serving.top_k} re-ordered")
  rows = [line.split() for line in lines[2:]]
  assert len(rows) == 8
  ratings = [float(r[3]) for r in rows]
  assert ratings == sorted(ratings, reverse=True)
  # The same ratings as the pushed rating model gives those candidates.
  rater = tflite.TFLiteRater(os.path.join(first["ranking"]["pushed"],
                                          "model.tflite"))
  recommender = tflite.TFLiteRecommender(os.path.join(first["pushed"],
                                                      "model.tflite"))
  with open(os.path.join(first["pushed"], "items.json"),
            encoding="utf-8") as f:
    catalog = json.load(f)
  features = {F.CONTEXT_RATING: [5.0, 4.0, 1.0]}
  for item in ("1", "2", "3"):  # what the command fills in from the catalog
    for name, value in session_data(config.data.dataset).item_features(
        catalog.get(item, {})).items():
      features.setdefault(name, []).append(value)
  ids, _ = recommender.recommend(["1", "2", "3"], features)
  predicted = rater.rate(["1", "2", "3"], ids, [5.0, 4.0, 1.0])
  best = int(np.argmax(predicted))
  assert rows[0][1] == ids[best]
  assert rows[0][4:6] == ["(retrieval", f"#{best + 1})"]
