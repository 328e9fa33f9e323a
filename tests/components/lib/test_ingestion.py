"""Tests of the splittable line source with offsets, line numbers of
malformed lines and the ingestion summary."""
import collections
import re
from typing import List

import apache_beam as beam
from apache_beam.io import source_test_utils
import pytest

from components.lib import ingestion
from components.lib.ingestion import (IngestionError, MalformedLine,
                                      MalformedLineError,
                                      _OffsetLineSource)
from tests.support.files import collect, load, reference_lines, write_lines


def test_resolve_line_numbers_crlf_blank_lines_and_large_offsets(tmp_path):
  # ~2.3 MB so that offsets lie beyond the first read chunk.
  lines = []
  for i in range(90_000):
    lines.append("" if i % 97 == 5 else f"{i}::{i % 13}::{'z' * (i % 31)}")
  big = tmp_path / "big.dat"
  big_offsets = write_lines(big, lines, eol="\r\n")
  assert big_offsets[-1] > 2 * (1 << 20)
  small = tmp_path / "small.dat"
  small_offsets = write_lines(small, ["a", "", "", "b", "c"],
                              final_eol=False)
  picks = [0, 1, 5, 6, 41_000, 60_001, 89_999]
  bad = [MalformedLine(str(big), big_offsets[i], "r", lines[i])
         for i in reversed(picks)]
  bad.append(MalformedLine(str(big), big_offsets[6], "another reason", ""))
  bad += [MalformedLine(str(small), small_offsets[i], "r", "")
          for i in (4, 0, 3)]

  resolved = ingestion.resolve_line_numbers(bad)

  assert len(resolved) == len(bad)
  lines_of_big = sorted(m.line for m in resolved if m.path == str(big))
  assert lines_of_big == sorted([i + 1 for i in picks] + [7])
  assert sorted(m.line for m in resolved if m.path == str(small)) == [1, 4, 5]
  for m in resolved:
    offsets = big_offsets if m.path == str(big) else small_offsets
    assert offsets[m.line - 1] == m.offset
  assert resolved[0].describe().startswith(f"{big}:1: r: ")


def test_ingestion_summary_keeps_first_lines_and_counts(tmp_path):
  files = []
  for name in ("a.dat", "b.dat"):
    path = tmp_path / name
    offsets = write_lines(path, [f"line {i}" for i in range(80)])
    files.append((str(path), offsets))
  # 150 malformed lines, in no particular order.
  bad = [MalformedLine(path, offsets[i], f"reason {i}", f"line {i}")
         for path, offsets in files for i in range(75)]
  bad = bad[1::2] + bad[::2]
  with beam.Pipeline() as pipeline:
    _ = {"examples": pipeline | "Examples" >> beam.Create([b"x", b"y", b"z"]),
         "malformed": pipeline | "Malformed" >> beam.Create(bad),
        } | "Report" >> ingestion.WriteIngestionSummary(str(tmp_path / "r1"))
    _ = {"examples": pipeline | "Examples2" >> beam.Create([b"x"]),
         "malformed": pipeline | "Malformed2" >> beam.Create([]),
        } | "Report2" >> ingestion.WriteIngestionSummary(str(tmp_path / "r2"))

  summary = ingestion.read_ingestion_summary(str(tmp_path / "r1"))
  assert (summary.examples, summary.malformed) == (3, 150)
  assert len(summary.malformed_lines) == ingestion.MAX_REPORTED_LINES == 100
  # The first 100 by file and position: all 75 of a.dat, then 25 of b.dat.
  expected = [(files[0][0], i + 1) for i in range(75)] + [
      (files[1][0], i + 1) for i in range(25)]
  assert [(m.path, m.line) for m in summary.malformed_lines] == expected
  assert summary.malformed_lines[3].reason == "reason 3"
  # Totals per file and reason, the values left out.
  assert summary.reported[ingestion.MALFORMED].totals == [
      (files[0][0], "reason …", 75), (files[1][0], "reason …", 75)]

  empty = ingestion.read_ingestion_summary(str(tmp_path / "r2"))
  assert (empty.examples, empty.malformed, empty.malformed_lines) == (1, 0, [])


def test_a_file_with_few_bad_lines_is_not_crowded_out(tmp_path):
  # One part per file (ReadMovieLens: movies, users, ratings): each keeps
  # its own first lines, so the catalog's root cause stays in the report.
  ratings = write_lines(tmp_path / "ratings.dat", ["r"] * 150)
  movies = write_lines(tmp_path / "u.item", ["m"] * 3)
  with beam.Pipeline() as pipeline:
    parts = (
        pipeline | "Ratings" >> beam.Create([
            MalformedLine(str(tmp_path / "ratings.dat"), o,
                          f"movie id {i} is not in u.item", "r")
            for i, o in enumerate(ratings)]),
        pipeline | "Movies" >> beam.Create([
            MalformedLine(str(tmp_path / "u.item"), movies[1],
                          "expected 24 fields separated by '|', found 3",
                          "m")]))
    _ = {"examples": pipeline | "Examples" >> beam.Create([b"x"]),
         "malformed": parts} | ingestion.WriteIngestionSummary(str(tmp_path))
  summary = ingestion.read_ingestion_summary(str(tmp_path))
  assert summary.malformed == 151
  assert len(summary.malformed_lines) == ingestion.MAX_REPORTED_LINES + 1
  assert (str(tmp_path / "u.item"), 2) in [
      (m.path, m.line) for m in summary.malformed_lines]
  assert summary.reported[ingestion.MALFORMED].totals == [
      (str(tmp_path / "ratings.dat"), "movie id … is not in u.item", 150),
      (str(tmp_path / "u.item"), "expected … fields separated by …, found …",
       1)]


def _reported(lines):
  totals = collections.Counter((m.path, ingestion.reason_kind(m.reason))
                               for m in lines)
  return ingestion.Reported(len(lines), lines, [
      (path, reason, count) for (path, reason), count in totals.items()])


def test_check_malformed_tolerance_and_message():
  sample = [MalformedLine("/d/ratings.dat", 10 * i, f"movie id {i} is not in "
                          "movies.dat", "x", line=i + 1) for i in range(12)]
  ingestion.check_malformed(_reported([]), 0, "max")
  ingestion.check_malformed(_reported(sample), 12, "max")
  with pytest.raises(IngestionError) as raised:
    ingestion.check_malformed(_reported(sample[:1]), 0,
                              "data.max_malformed_lines")
  assert "/d/ratings.dat:1: movie id 0 is not in movies.dat" in str(
      raised.value)
  assert "data.max_malformed_lines=0" in str(raised.value)
  with pytest.raises(IngestionError) as raised:
    ingestion.check_malformed(_reported(sample), 11, "max")
  message = str(raised.value)
  assert "/d/ratings.dat:10:" in message
  assert "/d/ratings.dat:11:" not in message  # only the first 10 are shown
  assert "2 more" in message


def test_check_malformed_shows_totals_and_root_causes_first():
  knock_on = [MalformedLine("/d/ratings.dat", 10 * i, "movie id 7 is not in "
                            "movies.dat", "x", line=i + 1) for i in range(30)]
  cause = MalformedLine("/d/movies.dat", 40, "expected 3 fields separated by "
                        "'::', found 1", "7 Heat", line=5)
  with pytest.raises(IngestionError) as raised:
    ingestion.check_malformed(_reported(knock_on + [cause]), 0,
                              "data.max_malformed_lines", ["/d/movies.dat"],
                              "/out/reports/ingestion_report.json")
  assert str(raised.value).splitlines()[:4] == [
      "31 malformed line(s), more than data.max_malformed_lines=0:",
      "  /d/movies.dat: 1 line: expected … fields separated by …, found …",
      "  /d/ratings.dat: 30 lines: movie id … is not in movies.dat",
      "  /d/movies.dat:5: expected 3 fields separated by '::', found 1: "
      "'7 Heat'"]
  assert str(raised.value).splitlines()[-2:] == [
      "  ... and 21 more",
      "  the full report: /out/reports/ingestion_report.json"]


@pytest.mark.parametrize("reason, kind", [
    ("movie id 99 is not in movies.dat", "movie id … is not in movies.dat"),
    ("rating 'five' is not a number", "rating … is not a number"),
    ("timestamp '99999999999999999999' is beyond the 64-bit integer range",
     "timestamp … is beyond the 64-bit integer range"),
    ("not valid utf-8: invalid start byte", "not valid utf-8: invalid start "
     "byte"),
])
def test_reason_kind_leaves_the_values_out(reason, kind):
  assert ingestion.reason_kind(reason) == kind


# --- the splittable line source ---------------------------------------------
def _many_lines(n: int) -> List[bytes]:
  # Varying lengths, blank lines and non-ASCII bytes.
  return [b"" if i % 50 == 7 else
          f"{i}::{'x' * (i % 23)}::é".encode("utf-8") for i in range(n)]


@pytest.mark.parametrize("eol, final_eol", [
    ("\n", True), ("\n", False), ("\r\n", True), ("\r\n", False)],
    ids=["lf", "lf-no-final-newline", "crlf", "crlf-no-final-newline"])
def test_source_split_reads_every_line_once_with_offset(tmp_path, eol,
                                                        final_eol):
  path = tmp_path / "lines.txt"
  write_lines(path, _many_lines(3000), eol=eol, final_eol=final_eol)
  expected = reference_lines(path.read_bytes())
  assert len(expected) == 3000
  source = _OffsetLineSource(str(path), min_bundle_size=1)

  whole = source_test_utils.read_from_source(source)
  assert [(r.offset, r.text) for r in whole] == expected
  assert {r.path for r in whole} == {str(path)}

  # Bundles of ~3 lines (most start mid-line) and of a few hundred lines.
  for bundle_size in (61, 4096):
    bundles = list(source.split(desired_bundle_size=bundle_size))
    assert len(bundles) > 10
    records = []
    for bundle in bundles:
      records += source_test_utils.read_from_source(
          bundle.source, bundle.start_position, bundle.stop_position)
    assert [(r.offset, r.text) for r in records] == expected, bundle_size
  source_test_utils.assert_sources_equal_reference_source(
      (source, None, None),
      [(b.source, b.start_position, b.stop_position) for b in bundles])


def test_source_one_byte_bundles_on_small_file(tmp_path):
  path = tmp_path / "small.txt"
  path.write_bytes(b"ab\r\n\ncd\nefg\r\n\r\nh\n\nij")
  expected = reference_lines(path.read_bytes())
  source = _OffsetLineSource(str(path), min_bundle_size=1)
  bundles = list(source.split(desired_bundle_size=1))
  assert len(bundles) == len(path.read_bytes())
  records = []
  for bundle in bundles:
    records += source_test_utils.read_from_source(
        bundle.source, bundle.start_position, bundle.stop_position)
  assert [(r.offset, r.text) for r in records] == expected


@pytest.mark.parametrize("data", [
    b"ab\ncd\n\nefg\nh\n",
    b"ab\ncd\n\nefg\nh",
    b"ab\r\ncd\r\n\r\nefg\r\nh\r\n",
    b"ab\r\ncd\r\n\r\nefg\r\nh",
    b"\n\n  \nfirst text\n\nsecond text",
], ids=["lf", "lf-no-final-newline", "crlf", "crlf-no-final-newline",
        "leading-blank-lines"])
def test_source_dynamic_splitting_exhaustive(tmp_path, data):
  path = tmp_path / "small.txt"
  path.write_bytes(data)
  source = _OffsetLineSource(str(path), min_bundle_size=1)
  assert [(r.offset, r.text) for r in
          source_test_utils.read_from_source(source)] == reference_lines(data)
  for bundle in source.split(desired_bundle_size=len(data)):
    source_test_utils.assert_split_at_fraction_exhaustive(
        bundle.source, bundle.start_position, bundle.stop_position,
        perform_multi_threaded_test=False)


def test_read_lines_with_offsets_in_a_pipeline(tmp_path):
  path = tmp_path / "lines.txt"
  write_lines(path, _many_lines(4000), eol="\r\n", final_eol=False)
  with beam.Pipeline() as pipeline:
    collect(pipeline | ingestion.ReadLinesWithOffsets(str(path)),
             tmp_path / "records.pkl", "Records")
  records = sorted(load(tmp_path / "records.pkl"), key=lambda r: r.offset)
  assert [(r.offset, r.text) for r in records] == reference_lines(
      path.read_bytes())


# --- format detection ---------------------------------------------------------


@pytest.mark.parametrize("text, reason", [
    ("12x", "'12x' is not an integer"),
    ("", "'' is not an integer"),
    ("99999999999999999999", "'99999999999999999999' is beyond the 64-bit "
     "integer range"),
    ("-9223372036854775809", "beyond the 64-bit integer range"),
])
def test_parse_int_rejects_what_an_int64_cannot_hold(text, reason):
  with pytest.raises(MalformedLineError, match=re.escape(reason)):
    ingestion.parse_int(text, "timestamp")


def test_parse_int_takes_the_whole_int64_range():
  assert ingestion.parse_int(" 9223372036854775807 ", "id") == 2**63 - 1
  assert ingestion.parse_int("-9223372036854775808", "id") == -2**63


@pytest.mark.parametrize("text, reason", [
    ("five", "not a number"), ("nan", "not finite"), ("-inf", "not finite"),
    ("1e39", "beyond the 32-bit float range"),
])
def test_parse_float_rejects_what_a_float32_cannot_hold(text, reason):
  with pytest.raises(MalformedLineError, match=f"rating '{text}' is {reason}"):
    ingestion.parse_float(text, "rating")
  assert ingestion.parse_float(" 3.4e38", "rating") == 3.4e38
