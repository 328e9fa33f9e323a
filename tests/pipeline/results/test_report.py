"""`recsys report` on the shared runs: the text report (metrics beside the
most-popular baseline and the latest blessed model, slices, blessing,
push), an unknown run, the HTML report in headless Chromium, README's
notebook cell, and the Ali-CCP run."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from components.lib import layout
from components.lib import slices
from components.model.export import signature_names as names
from components.user_modules import evaluation
from pipeline import PROJECT_ROOT
from pipeline.cli import main as cli
from pipeline.config import ConfigError
from pipeline.results import report
from pipeline.results import report_html
from pipeline.results import runs as pipeline_runs


def test_rerun_is_evaluated_against_the_latest_blessed_model(sample_runs):
  config, first, second = (sample_runs.config, sample_runs.first,
                           sample_runs.second)
  second_run = pipeline_runs.list_runs(config)[1]["run"]
  found = report.facts(config, second_run)
  blessing = found["blessing"]
  # The baseline is the first run's model, which is also the candidate.
  assert blessing["baseline_model"] == first["model"] == second["model"]
  assert blessing["blessed"] and second["blessed"]
  assert blessing["reason"] == (
      "passed: hit_rate@10 {0:.4f} >= {1:.4f}; hit_rate@10 change vs "
      "baseline +0.0000 >= {2:+.4f}".format(
          first["metrics"][names.SCORES]["hit_rate@10"],
          config.eval.min_hit_rate_at_10, -config.eval.max_hit_rate_drop))
  overall = found["slices"][()]
  for name, value in overall[evaluation.DIFF][names.SCORES].items():
    assert np.allclose(value, 0.0), name
  assert overall[evaluation.BASELINE][names.SCORES]["hit_rate@10"] == (
      first["metrics"][names.SCORES]["hit_rate@10"])
  # The first run had no baseline: the lower bound alone.
  first_run = report.facts(config, pipeline_runs.list_runs(config)[0]["run"])
  assert first_run["blessing"]["baseline_model"] is None
  assert first_run["blessing"]["reason"].count(";") == 0


def test_report_text_of_the_latest_run(sample_runs, capsys):
  config, first = sample_runs.config, sample_runs.first
  assert cli.main(["report", "--output-dir", config.output_dir]) == 0
  text = capsys.readouterr().out
  rows = pipeline_runs.list_runs(config)
  assert text.startswith(f"recsys report: run {rows[-1]['run']} of "
                         f"{config.output_dir}")
  # The run's own config, as its context recorded it.
  assert (f"config {sample_runs.other_runner['config'].digest()}: movielens "
          f"{config.data.data_dir}, encoder attention, beam runner") in text
  lines = text.splitlines()
  model = first["metrics"][names.SCORES]
  popular = first["metrics"][names.POPULARITY_SCORES]
  # Model, most popular and delta, then the baseline model and TFMA's diff.
  (hr10, tflite_hr10, ranker_hr10) = [
      line.split() for line in lines
      if line.split()[:1] == ["HR@10"] and "slice" not in line]
  assert hr10 == ["HR@10", f"{model['hit_rate@10']:.4f}",
                  f"{popular['hit_rate@10']:.4f}",
                  f"{model['hit_rate@10'] - popular['hit_rate@10']:+.4f}",
                  f"{model['hit_rate@10']:.4f}", "+0.0000"]
  # The pushed file's own figure beside the SavedModel's.
  assert tflite_hr10 == ["HR@10", f"{model['hit_rate@10']:.4f}",
                         f"{first['tflite']['overall']['hit_rate@10']:.4f}"]
  assert "model.tflite HR@10 by slice" in text
  assert "baseline: the latest blessed model" in text
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
  tflite = os.path.getsize(os.path.join(first["pushed"], layout.TFLITE_MODEL))
  assert f"model.tflite {tflite / 2**20:.2f} MiB" in text
  assert "anomalies: none" in text
  assert "ratings: 64162 interactions, 600 users" in text
  # The two stages against retrieval alone (TFMA's baseline: this run's
  # retrieval model), and both files chained.
  ranker = first["ranker"]
  chain = ranker["metrics"][names.SCORES]["hit_rate@10"]
  assert ranker_hr10[:3] == ["HR@10", f"{model['hit_rate@10']:.4f}",
                             f"{chain:.4f}"]
  assert float(ranker_hr10[3]) == pytest.approx(
      chain - model["hit_rate@10"], abs=1e-4)
  assert ranker_hr10[4] == f"{ranker['tflite']['overall']['hit_rate@10']:.4f}"
  assert "  NDCG@10 by slice" in text
  assert f"Pushed: {ranker['pushed']}" in text


def test_report_of_an_unknown_run_names_the_known_ones(sample_runs):
  config = sample_runs.config
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


def test_html_report_renders_every_plot_in_chromium(sample_runs, tmp_path, capsys):
  config = sample_runs.config
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


def test_readme_notebook_snippet_opens_the_artifacts(sample_runs):
  """README's notebook cell runs on the run's artifacts (the widgets it
  draws need Jupyter; outside one they are built, not shown)."""
  config = sample_runs.config
  with open(os.path.join(PROJECT_ROOT, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  snippet = readme.split("```python\n# notebook\n", 1)[1].split("```", 1)[0]
  snippet = snippet.replace('"output/sample"', repr(config.output_dir))
  namespace = {}
  exec(compile(snippet, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  result, stats = namespace["result"], namespace["stats"]
  assert any(dict(key).get(slices.TARGET_POPULARITY) == "head"
             for key, _ in result.slicing_metrics)
  assert stats.datasets[0].num_examples == 64162




def test_report_reads_the_aliccp_run(aliccp_run):
  config, summary = aliccp_run
  found = report.facts(config)
  # One raw split of impressions (both files); every user is in each of the
  # history and popularity slice sets.
  assert set(found["data"]["splits"]) == {"impressions"}
  users = found["sessions"]["users"]
  per_feature = {}
  for feature, _, roles in report.slice_rows(found):
    per_feature[feature] = per_feature.get(feature, 0) + int(report.count(roles))
  assert per_feature[slices.HISTORY_LENGTH] == users
  assert per_feature[slices.TARGET_POPULARITY] == users
  assert 0 < per_feature[slices.USER_GENDER] <= users
  text = report.format_text(found)
  assert "Blessing: blessed" in text and f"Pushed: {summary['pushed']}" in text
