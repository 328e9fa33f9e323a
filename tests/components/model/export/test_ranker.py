"""The ranker's on-device file: builtin ops only, and the same scores and
order as the Keras model (float32 weights exactly, float16 closely)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib import features as F
from components.model import next_item_ranker as ranker
from components.model.export import tflite
from components.model.export.ranker import RankerOnDeviceExport
from components.model.export.signature_names import RANK, SCORES
from tests.support.sessions import feature_config

ITEMS, CANDIDATES, CONTEXT = 50, 8, 6


def _inputs(rng, rows):
  candidates = np.stack([rng.permutation(np.arange(2, ITEMS))[:CANDIDATES]
                         for _ in range(rows)]).astype(np.int32)
  candidates[0, -2:] = F.PAD_ID  # fewer candidates than slots
  context = rng.integers(2, ITEMS, size=(rows, CONTEXT)).astype(np.int32)
  context[1, 3:] = F.PAD_ID  # a short context
  return {
      F.CANDIDATE_ITEM_INDEX: candidates,
      F.CANDIDATE_SCORE: np.sort(rng.normal(size=(rows, CANDIDATES)), axis=1
                                 )[:, ::-1].astype(np.float32),
      F.CONTEXT_ITEM_ID: context,
      F.USER_GENDER: rng.integers(2, 4, size=(rows, 1)).astype(np.int32),
      F.USER_AGE: rng.integers(2, 9, size=(rows, 1)).astype(np.int32),
  }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  rng = np.random.default_rng(0)
  histories = [rng.choice(np.arange(2, ITEMS), size=10, replace=False)
               for _ in range(60)]
  ids, probability = ranker.successor_table(histories, ITEMS, 4, 3)
  layer = ranker.CandidateFeatures(
      np.log1p(rng.integers(0, 50, ITEMS)), ids, probability,
      rng.integers(2, 6, size=(ITEMS, 2)), recent_windows=[1, 3])
  keras.utils.set_random_seed(0)
  model = ranker.NextItemRanker(
      feature_config(), {"item_id": ITEMS, "genre": 6, "user_gender": 4},
      layer, hidden_units=[16, 8])
  train = _inputs(rng, 64)
  model.normalization.adapt(model.features(train))
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  model.fit(train, rng.integers(0, CANDIDATES - 2, 64), epochs=2, verbose=0)
  path = str(tmp_path_factory.mktemp("ranker") / "ondevice")
  RankerOnDeviceExport(model, CANDIDATES, CONTEXT,
                       {F.USER_GENDER: 1, F.USER_AGE: 1}).save(path)
  return model, path, _inputs(rng, 20)


@pytest.mark.parametrize("quantization, tolerance", [("none", 1e-5),
                                                     ("float16", 2e-2)])
def test_the_file_scores_as_the_model(exported, quantization, tolerance):
  model, path, queries = exported
  runner = tf.lite.Interpreter(model_content=tflite.convert(
      path, RANK, quantization)).get_signature_runner(RANK)
  for row in range(len(queries[F.CONTEXT_ITEM_ID])):
    one = {name: values[row:row + 1] for name, values in queries.items()}
    got = runner(**one)[SCORES][0]
    want = model(one).numpy()[0]
    np.testing.assert_allclose(got, want, atol=tolerance, rtol=tolerance)
    if quantization == "none":
      np.testing.assert_array_equal(np.argsort(-got, kind="stable"),
                                    np.argsort(-want, kind="stable"))
  # Padding slots keep the floor.
  first = {name: values[:1] for name, values in queries.items()}
  np.testing.assert_array_equal(runner(**first)[SCORES][0][-2:],
                                ranker.MASKED_SCORE)
