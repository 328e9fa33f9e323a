"""The data sets of other shapes cut at bench time, and their table."""
import collections
import json

import pytest

from pipeline.bench import shapes


def ratings(counts):
  """ML-1M rating lines: user u rates counts[u] movies."""
  return [f"{user}::{item}::4::{978300000 + item}"
          for user, count in counts.items() for item in range(1, count + 1)]


def users(lines):
  return collections.Counter(shapes._user(line) for line in lines)  # pylint: disable=protected-access


def test_cuts_keep_what_their_names_say():
  lines = ratings({1: 5, 2: 40, 3: 7, 1001: 3, 1002: 90, 4: 40})
  assert set(users(shapes.first_users(lines))) == {1, 2, 3, 4}
  assert users(shapes.most_active(lines, 3)) == {1002: 90, 2: 40, 4: 40}
  sparse = shapes.sparse(lines)
  assert set(sparse) <= set(lines)
  kept = users(sparse)
  # Every user keeps at least one rating, about a fifth of a long history.
  assert set(kept) == set(users(lines))
  assert 8 <= kept[1002] <= 30
  # In file order, and the same on every call.
  assert sparse == [line for line in lines if line in set(sparse)]
  assert shapes.sparse(lines) == sparse


def test_data_sets_are_written_in_the_ml1m_format(tmp_path):
  source = tmp_path / "ml-1m"
  source.mkdir()
  (source / "ratings.dat").write_text("\n".join(ratings({1: 4, 2000: 3})) +
                                      "\n", encoding="latin-1")
  (source / "movies.dat").write_text("1::Ä (1990)::Drama\n", encoding="latin-1")
  (source / "users.dat").write_text("1::F::1::10::48067\n", encoding="latin-1")
  sets = shapes.data_sets(str(source), str(tmp_path / "out"),
                          ["ml-1m", "first-1000-users", "sample"])
  assert sets["ml-1m"] == str(source)
  cut = tmp_path / "out" / "first-1000-users"
  assert sets["first-1000-users"] == str(cut)
  assert (cut / "ratings.dat").read_text(encoding="latin-1").splitlines() == (
      ratings({1: 4}))
  assert (cut / "movies.dat").read_text(encoding="latin-1") == (
      "1::Ä (1990)::Drama\n")
  assert sets["sample"].endswith("data/sample")


def test_table_compares_the_default_with_the_one_before():
  def run(profile, hr):
    return {"profile": profile, "hit_rate@10": hr, "ndcg@10": hr / 2,
            "most_popular": {"hit_rate@10": 0.04, "ndcg@10": 0.02},
            "context_length": 200, "loss": "softmax"}
  result = {"date": "2026-12-05", "machine": "m",
            "data_sets": [{"name": "ml-1m", "shape": {
                "users": 2999, "items": 3615, "interactions": 487650,
                "history_quantiles": {"50": 87, "80": 243, "90": 401}},
                           "runs": [run("before", 0.25), run("default", 0.30),
                                    run("tuned", 0.31)]}]}
  table = shapes.markdown(result)
  assert ("| ml-1m | 2,999 | 3,615 | 487,650 | 243 | 0.0400 / 0.0200 | "
          "0.2500 / 0.1250 | 0.3000 / 0.1500 (L=200, softmax) | +20% (±4%) | "
          "0.3100 / 0.1550 |") in table


def test_change_error_is_the_binomial_error_of_a_difference():
  # HR@10 0.25 on 2,999 users: sqrt(2 * 0.25 * 0.75 / 2999) / 0.25.
  assert shapes.change_error(0.25, 2999) == pytest.approx(0.0447, abs=1e-4)
  # A quarter of the users: twice the error.
  assert shapes.change_error(0.25, 2999 // 4) == pytest.approx(
      2 * shapes.change_error(0.25, 2999), rel=1e-3)


def test_rows_of_other_runs_are_kept_and_resume_skips_recorded_ones(
    tmp_path, monkeypatch):
  runs = []

  def row(profile, minutes):
    return {"profile": profile, "hit_rate@10": 0.2, "ndcg@10": 0.1,
            "most_popular": {"hit_rate@10": 0.04, "ndcg@10": 0.02},
            "context_length": 50, "loss": "softmax", "run_minutes": minutes}

  def run_profile(profile, data_dir, output_dir):
    runs.append(profile)
    return row(profile, 1.5)
  monkeypatch.setattr(shapes, "run_profile", run_profile)
  earlier = {"name": "ml-1m", "shape": {
      "users": 2999, "items": 3615, "interactions": 487650,
      "history_quantiles": {"50": 87, "80": 243, "90": 401}},
             "runs": [row("before", 30.0)]}
  (tmp_path / "shapes.json").write_text(json.dumps({"data_sets": [earlier]}))

  result = shapes.run_shapes("unused", str(tmp_path), ["sample"], ["default"])
  assert runs == ["default"]
  assert [(e["name"], [r["profile"] for r in e["runs"]])
          for e in result["data_sets"]] == [("ml-1m", ["before"]),
                                            ("sample", ["default"])]
  assert result["data_sets"][0] == earlier
  assert "its pipeline runs took 32 min" in (tmp_path / "shapes.md").read_text()

  shapes.run_shapes("unused", str(tmp_path), ["sample"],
                    ["before", "default"], resume=True)
  assert runs == ["default", "before"]
  shapes.run_shapes("unused", str(tmp_path), ["sample"], ["default"])
  assert runs == ["default", "before", "default"]


def test_an_interrupted_bench_loses_no_row(tmp_path, monkeypatch):
  def interrupted(profile, data_dir, output_dir):
    raise KeyboardInterrupt
  monkeypatch.setattr(shapes, "run_profile", interrupted)
  earlier = {"name": "ml-1m", "shape": {"users": 2999}, "runs": [
      {"profile": "before"}]}
  (tmp_path / "shapes.json").write_text(json.dumps({"data_sets": [earlier]}))
  monkeypatch.setattr(shapes, "markdown", lambda result: "")
  with pytest.raises(KeyboardInterrupt):
    shapes.run_shapes("unused", str(tmp_path), ["sample"], ["tuned"])
  kept = json.loads((tmp_path / "shapes.json").read_text())["data_sets"]
  assert [e["name"] for e in kept] == ["ml-1m", "sample"]
  assert kept[0] == earlier
