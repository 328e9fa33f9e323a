"""The replay's cut of a data set into spans by time, and its table."""
import os

import pytest

from components.lib.errors import InputError
from pipeline.runners import replay


def _write(directory, ratings, header=None, name="ratings.dat"):
  directory.mkdir(parents=True, exist_ok=True)
  lines = ([header] if header else []) + ratings
  (directory / name).write_text("\n".join(lines) + "\n")


def test_spans_are_equal_cuts_in_time_order_with_the_catalog_in_the_first(
    tmp_path):
  source = tmp_path / "source"
  # Listed out of time order; 3 and 4 share a timestamp (file order keeps).
  _write(source, ["1::10::5::400", "2::11::4::100", "1::12::3::300",
                  "3::10::2::300", "2::13::1::200", "3::14::5::500"])
  (source / "movies.dat").write_text("10::A (1990)::Drama\n")
  (source / "users.dat").write_text("1::F::25::1::00000\n")

  spans = replay.cut(str(source), 3, str(tmp_path / "spans"))

  read = lambda s: (tmp_path / "spans" / os.path.basename(s.directory) /
                    "ratings.dat").read_text().splitlines()
  assert [read(s) for s in spans] == [
      ["2::11::4::100", "2::13::1::200"],
      ["1::12::3::300", "3::10::2::300"],
      ["1::10::5::400", "3::14::5::500"]]
  assert [os.path.basename(s.directory) for s in spans] == [
      "span-1", "span-2", "span-3"]
  assert [(s.interactions, s.new_items) for s in spans] == [
      (2, 2), (2, 2), (2, 1)]  # 10 is new in span 2, not in span 3
  assert sorted(os.listdir(spans[0].directory)) == [
      "movies.dat", "ratings.dat", "users.dat"]
  assert os.listdir(spans[1].directory) == ["ratings.dat"]


def test_a_csv_keeps_its_header_in_every_span(tmp_path):
  source = tmp_path / "source"
  _write(source, ["1,10,4.0,20", "1,11,3.5,10"],
         header="userId,movieId,rating,timestamp", name="ratings.csv")
  (source / "movies.csv").write_text("movieId,title,genres\n10,A (1990),Drama\n")
  spans = replay.cut(str(source), 2, str(tmp_path / "spans"))
  assert [(tmp_path / "spans" / os.path.basename(s.directory) / "ratings.csv"
           ).read_text().splitlines() for s in spans] == [
               ["userId,movieId,rating,timestamp", "1,11,3.5,10"],
               ["userId,movieId,rating,timestamp", "1,10,4.0,20"]]


def test_a_line_that_does_not_parse_is_named(tmp_path):
  source = tmp_path / "source"
  _write(source, ["1::10::5::400", "2::11::4"])
  (source / "movies.dat").write_text("10::A (1990)::Drama\n")
  with pytest.raises(InputError, match=r"ratings.dat:2: "):
    replay.cut(str(source), 2, str(tmp_path / "spans"))


def _run(span, **values):
  found = {"span": span, "new_interactions": 100, "new_items": 5,
           "users": 50, "drift": {"rating": {"distance": 0.01}},
           "executed": 9, "cached": 4, "ingestion_seconds": 3.0,
           "epochs": 4, "training_seconds": 30.0, "warm_start": True,
           "hit_rate@10": 0.2, "ndcg@10": 0.1, "forward_hit_rate@10": 0.15,
           "forward_ndcg@10": 0.08, "forward_popular_hit_rate@10": 0.03,
           "blessed": True, "pushed": "17", "stopped": None}
  found.update(values)
  return found


def test_the_table_has_a_row_per_run_and_the_from_scratch_columns():
  spans = [{"number": 1}, {"number": 2}]
  warm = {"spans": spans, "ingestion_from_scratch_seconds": 9.5,
          "runs": [_run(1, warm_start=False),
                   _run(2, stopped="drift: item_genres")]}
  scratch = {"spans": spans, "runs": [_run(1, epochs=7), _run(2, epochs=9)]}
  lines = replay.markdown(warm, scratch).splitlines()
  assert lines[0].startswith("| span | new ratings |")
  assert lines[0].endswith("| scratch forward HR@10 |")
  assert lines[2].startswith("| 1 | 100 | 50 | 5 | rating 0.010 | 9/4 | 3.0 | 4 |")
  assert lines[2].endswith("| 7 | 30 | 0.2000 | 0.1000 | 0.1500 |")
  assert "stopped: drift: item_genres" in lines[3]
  assert lines[-1] == ("Ingestion and statistics of all 2 spans in a fresh "
                       "store: 9.5 s.")
