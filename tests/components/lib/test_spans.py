"""Span directories: what TFX's span matching reads, and clear errors for
what it would read wrongly."""
import pytest

from components.lib import spans
from components.lib.ingestion import IngestionError


def _span(root, name, *files):
  directory = root / name
  directory.mkdir()
  for file in files:
    (directory / file).write_text("x\n")
  return directory


def test_a_flat_directory_is_span_0(tmp_path):
  (tmp_path / "ratings.dat").write_text("x\n")
  assert spans.span_dirs(str(tmp_path)) == {}
  assert spans.input_pattern(str(tmp_path), "*") == "*"
  assert spans.span_dir(str(tmp_path)) == str(tmp_path)
  assert spans.span_dir(str(tmp_path), 0) == str(tmp_path)
  assert spans.catalog_dirs(str(tmp_path)) == []
  with pytest.raises(IngestionError, match="no span directories, so no span 3"):
    spans.span_dir(str(tmp_path), 3)


def test_span_directories_in_span_order(tmp_path):
  ten = _span(tmp_path, "span-10", "ratings.dat")
  nine = _span(tmp_path, "span-09", "ratings.dat", "movies.dat")
  assert spans.span_dirs(str(tmp_path)) == {9: str(nine), 10: str(ten)}
  assert spans.input_pattern(str(tmp_path), "*") == "span-{SPAN:2}/*"
  assert spans.span_dir(str(tmp_path)) == str(ten)  # the newest
  assert spans.span_dir(str(tmp_path), 9) == str(nine)
  assert spans.catalog_dirs(str(tmp_path)) == [str(ten), str(nine)]
  with pytest.raises(IngestionError, match="no span-11 directory"):
    spans.span_dir(str(tmp_path), 11)


@pytest.mark.parametrize("names, files, message", [
    (["span-9", "span-10"], [], "different widths"),
    (["span-01"], ["ratings.dat"], "holds span directories and other files"),
], ids=["widths", "flat files beside spans"])
def test_what_span_matching_would_misread_is_an_error(tmp_path, names, files,
                                                      message):
  for name in names:
    _span(tmp_path, name, "ratings.dat")
  for name in files:
    (tmp_path / name).write_text("x\n")
  with pytest.raises(IngestionError, match=message):
    spans.span_dirs(str(tmp_path))


def test_an_unreachable_directory_compiles_as_flat(tmp_path):
  assert spans.input_pattern(str(tmp_path / "absent"), "*/*.csv") == "*/*.csv"
