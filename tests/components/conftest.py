"""Fixtures of the components' tests that several test modules share."""
import pytest

from tests.support import ranker_model
from tests.support import retrieval_model


@pytest.fixture(scope="session")
def retrieval_export(tmp_path_factory):
  """A small retrieval model trained and exported once (support/)."""
  return retrieval_model.export(tmp_path_factory.mktemp("retrieval"))


@pytest.fixture(scope="session")
def ranker_export(retrieval_export, tmp_path_factory):
  """A small ranker over `retrieval_export`'s candidates (support/)."""
  return ranker_model.train(retrieval_export, tmp_path_factory.mktemp("ranker"))
