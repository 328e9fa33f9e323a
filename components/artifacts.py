"""Artifact types this project adds to TFX's standard ones."""
from tfx.types import artifact


class ItemCatalog(artifact.Artifact):
  """The item catalog (id -> title, genres, year) as `items.json`.

  Written by Sessionize from the raw interactions and shipped beside the
  pushed model, so that an app (or `recsys recommend`) can fill an item's side
  features and show titles.
  """
  # "<module>.<class>": the form Kubeflow's compiler accepts for a custom
  # type, which its executor entry point imports back by that path
  # (components/__init__.py exports the class).
  TYPE_NAME = "components.ItemCatalog"
  # Custom property: the data set whose entries the catalog holds (its
  # entries' fields differ by data set; components/lib/session_data.py).
  DATASET_PROPERTY = "dataset"


class TwoStageEvaluation(artifact.Artifact):
  """Retrieval alone vs retrieval top-N re-ordered by the rating model, on
  the test split (`two_stage_metrics.json`, components/two_stage_evaluator/)."""
  TYPE_NAME = "components.TwoStageEvaluation"
