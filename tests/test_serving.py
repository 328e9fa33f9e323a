"""The exported signatures, the TFLite conversion and the push."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfx.types import standard_artifacts

from components.lib import features as F
from components import pusher
from components import serving
from components import tflite
from components import trainer
from components.model.catalog_ranking import EXCLUDED_SCORE
from tests.sessions import GENRE_SLOTS, analyze_and_transform, custom_config
from tests.sessions import feature_config, session

CONTEXT, TOP_K = 4, 20
ITEMS = [f"{100 + i}".encode() for i in range(30)]
GENRE_OF = {item: [b"Drama" if i % 2 else b"Comedy"] + ([b"War"] if i % 3 == 0
                                                         else [])
            for i, item in enumerate(ITEMS)}
FEATURES = feature_config(item_dim=16)
CONFIG = {
    **custom_config(FEATURES, CONTEXT),
    "model": {"encoder": "attention", "dropout": 0.0,
              "share_item_embeddings": True, "attention_units": 16,
              "attention_layers": 1, "attention_heads": 1},
    "train": {"learning_rate": 0.02, "loss": "softmax", "num_negatives": 8},
}


def example(context, label, history=None, user=b"u"):
  return session(label, context, ratings=[4.0] * len(context),
                 years=[1990 + len(c) for c in context],
                 genres=[GENRE_OF.get(c, []) for c in context],
                 history=history or [], user=user)


def user_examples(start, length, user):
  """Train chunks of a user who watches items in id order from `start`."""
  seq = [ITEMS[(start + i) % len(ITEMS)] for i in range(length)]
  return [example(seq[i:i + CONTEXT], seq[i + CONTEXT], user=user)
          for i in range(0, length - CONTEXT, CONTEXT + 1)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("serving")
  train = [e for u in range(40) for e in user_examples(u, 16, str(u).encode())]
  # Test users with long histories (more than the context) and short ones.
  test = []
  for u in range(6):
    seq = [ITEMS[(3 * u + i) % len(ITEMS)] for i in range(8 if u % 2 else 3)]
    test.append(example(seq[:-1][-CONTEXT:], seq[-1], history=seq[:-1],
                        user=b"t"))
  transformed_train, _, tft_output = analyze_and_transform(
      train, [test], CONFIG, str(tmp))
  tf_keras.utils.set_random_seed(1)
  model = trainer.build_model(CONFIG, tft_output)
  names = serving.model_feature_names(FEATURES)
  x = {k: np.stack([r[k] for r in transformed_train]) for k in names}
  y = np.array([r[F.LABEL_ITEM_ID] for r in transformed_train])
  model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), epochs=40,
            verbose=0)
  export = serving.RecommenderExport(model, tft_output, FEATURES, CONTEXT,
                                     TOP_K)
  path = str(tmp / "saved_model")
  serving.save(export, path)
  tflite_path = str(tmp / "model.tflite")
  with open(tflite_path, "wb") as f:
    f.write(tflite.convert(path))
  return {"saved_model": tf.saved_model.load(path), "saved_model_path": path,
          "tflite": tflite_path, "test": test, "tft_output": tft_output,
          "train": train}


def pad(values, n, fill):
  values = list(values)[-n:]
  return values + [fill] * (n - len(values))


def raw_inputs(contexts):
  """serving_default's inputs for a batch of contexts (lists of ids)."""
  genres = [[g for c in ctx[-CONTEXT:]
             for g in pad(GENRE_OF.get(c, [])[:GENRE_SLOTS], GENRE_SLOTS, b"")]
            for ctx in contexts]
  return {
      F.CONTEXT_ITEM_ID: tf.constant([pad(c, CONTEXT, b"") for c in contexts]),
      F.CONTEXT_RATING: tf.constant([pad([4.0] * len(c), CONTEXT, 0.0)
                                     for c in contexts]),
      F.CONTEXT_YEAR: tf.constant([pad([1990 + len(i) for i in c], CONTEXT, 0)
                                   for c in contexts], tf.int32),
      F.CONTEXT_GENRE: tf.constant([pad(g, CONTEXT * GENRE_SLOTS, b"")
                                    for g in genres]),
      F.USER_GENDER: tf.constant([[b"F"]] * len(contexts)),
      F.USER_AGE: tf.constant([[25]] * len(contexts), tf.int32),
  }


def serve(loaded, contexts):
  return loaded.signatures["serving_default"](**raw_inputs(contexts))


def test_serving_returns_top_k_raw_ids_without_context_items(exported):
  contexts = [[ITEMS[0], ITEMS[1]], [ITEMS[5]], [], [ITEMS[7], b"unknown"]]
  out = serve(exported["saved_model"], contexts)
  ids = out[serving.TOP_ITEM_IDS].numpy()
  scores = out[serving.TOP_SCORES].numpy()
  assert ids.shape == scores.shape == (len(contexts), TOP_K)
  for context, row, row_scores in zip(contexts, ids, scores):
    assert set(row) <= set(ITEMS)  # raw ids, never <pad>/<oov>
    assert not set(row) & set(context)
    assert len(set(row)) == TOP_K
    assert np.all(np.diff(row_scores) <= 0)


def test_empty_history_gets_the_most_popular_items(exported):
  counts = {}
  for e in exported["train"]:
    for item in e[F.CONTEXT_ITEM_ID] + [e[F.LABEL_ITEM_ID]]:
      counts[item] = counts.get(item, 0) + 1
  out = serve(exported["saved_model"], [[]])
  scores = out[serving.TOP_SCORES].numpy()[0]
  ids = out[serving.TOP_ITEM_IDS].numpy()[0]
  np.testing.assert_array_equal(scores, [counts[i] for i in ids])
  assert list(scores) == sorted(counts.values(), reverse=True)[:TOP_K]


def test_trained_model_learned_the_next_item_habit(exported):
  # Every user watches items in id order: after 102 comes 103.
  out = serve(exported["saved_model"], [[ITEMS[0], ITEMS[1], ITEMS[2]]])
  assert out[serving.TOP_ITEM_IDS].numpy()[0][0] == ITEMS[3]


def test_tflite_matches_saved_model_top_10(exported):
  recommender = tflite.TFLiteRecommender(exported["tflite"])
  assert recommender.context_length == CONTEXT
  rng = np.random.default_rng(0)
  contexts = [list(rng.choice(ITEMS, size=n, replace=False))
              for n in rng.integers(0, 9, size=40)]
  saved = serve(exported["saved_model"], contexts)
  saved_ids = saved[serving.TOP_ITEM_IDS].numpy()
  saved_scores = saved[serving.TOP_SCORES].numpy()
  # Many calls in a row on one interpreter: no state may leak between them.
  for context, want_ids, want_scores in zip(contexts, saved_ids, saved_scores):
    recent = context[-CONTEXT:]
    ids, scores = recommender.recommend(
        [c.decode() for c in context], {
            F.CONTEXT_RATING: [4.0] * len(context),
            F.CONTEXT_GENRE: [[g.decode() for g in GENRE_OF[c]]
                              for c in context],
            F.CONTEXT_YEAR: [1990 + len(c) for c in context]},
        user={F.USER_GENDER: "F", F.USER_AGE: 25})
    assert ids[:10] == [i.decode() for i in want_ids[:10]], recent
    np.testing.assert_allclose(scores[:10], want_scores[:10], rtol=1e-4,
                               atol=1e-4)


def test_tflite_uses_builtin_ops_only(exported):
  # A model needing TF Select (Flex) ops fails to run in a plain interpreter
  # with "Select TensorFlow op(s) ... not supported"; allocation proves it.
  interpreter = tf.lite.Interpreter(model_path=exported["tflite"])
  interpreter.allocate_tensors()
  ops = {d["op_name"] for d in interpreter._get_ops_details()}  # pylint: disable=protected-access
  assert not any(op.startswith("Flex") for op in ops), ops
  assert "HASHTABLE_FIND" in ops or "HASHTABLE_LOOKUP" in ops, ops


def test_evaluate_excludes_history_and_matches_serving(exported):
  """The TFT path (evaluate) and the serving lookups give the same scores."""
  serialized = []
  spec = exported["tft_output"].raw_feature_spec()
  for s in exported["test"]:
    feature = {}
    for name, values in s.items():
      values = values if isinstance(values, list) else [values]
      dtype = spec[name].dtype
      if dtype == tf.string:
        feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
      elif dtype == tf.float32:
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
      else:
        feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    serialized.append(tf.train.Example(features=tf.train.Features(
        feature=feature)).SerializeToString())
  out = exported["saved_model"].signatures["evaluate"](
      examples=tf.constant(serialized))
  scores = out[serving.SCORES].numpy()
  popularity = out[serving.POPULARITY_SCORES].numpy()
  vocab = exported["tft_output"].vocabulary_by_name("item_id")
  index = {item: i + F.NUM_RESERVED_IDS for i, item in enumerate(vocab)}
  train_counts = {}
  for e in exported["train"]:
    for item in e[F.CONTEXT_ITEM_ID] + [e[F.LABEL_ITEM_ID]]:
      train_counts[item] = train_counts.get(item, 0) + 1
  for s, row, pop in zip(exported["test"], scores, popularity):
    excluded = {index[h] for h in s[F.HISTORY_ITEM_ID]} | {F.PAD_ID, F.OOV_ID}
    for i in range(len(row)):
      if i in excluded:
        assert row[i] == EXCLUDED_SCORE and pop[i] == EXCLUDED_SCORE
      else:
        assert row[i] > EXCLUDED_SCORE
        assert pop[i] == train_counts[vocab[i - F.NUM_RESERVED_IDS]]
    # Here the history is the context, so serving's top-K is evaluate's.
    if len(s[F.HISTORY_ITEM_ID]) <= CONTEXT:
      served = serve(exported["saved_model"], [s[F.CONTEXT_ITEM_ID]])
      top = np.sort(row)[::-1][:TOP_K]
      np.testing.assert_allclose(served[serving.TOP_SCORES].numpy()[0], top,
                                 rtol=1e-5, atol=1e-5)


def _model_artifact_dir(exported, root):
  """A Trainer Model artifact's layout: Format-Serving and Format-TFLite."""
  model_uri = root / "model"
  shutil.copytree(exported["saved_model_path"], model_uri / "Format-Serving")
  (model_uri / trainer.TFLITE_DIR).mkdir()
  shutil.copy(exported["tflite"], model_uri / trainer.TFLITE_DIR / trainer.TFLITE_FILE)
  return model_uri


def test_push_writes_a_complete_versioned_bundle(exported, tmp_path):
  model_uri = _model_artifact_dir(exported, tmp_path)
  catalog = tmp_path / "items.json"
  catalog.write_text('{"100": {"title": "x", "genres": [], "year": null}}')
  push_dir = tmp_path / "serving"
  first = pusher.push(str(model_uri), str(push_dir), str(catalog),
                      {"model": {"hit_rate@10": 0.5}}, {"name": "t"})
  second = pusher.push(str(model_uri), str(push_dir), None, {}, {})
  assert int(os.path.basename(second)) > int(os.path.basename(first))
  assert sorted(os.listdir(first)) == ["items.json", "metadata.json",
                                       "model.tflite", "saved_model"]
  with open(os.path.join(first, "metadata.json")) as f:
    metadata = json.load(f)
  assert metadata["top_k"] == TOP_K
  assert metadata["inputs"][F.CONTEXT_GENRE] == {"dtype": "string",
                                                 "shape": [-1, CONTEXT * GENRE_SLOTS]}
  assert metadata["outputs"][serving.TOP_SCORES]["dtype"] == "float32"
  assert metadata["metrics"] == {"model": {"hit_rate@10": 0.5}}
  assert sorted(os.listdir(push_dir)) == sorted(
      [os.path.basename(first), os.path.basename(second)])


def test_failed_push_leaves_nothing_behind(exported, tmp_path):
  model_uri = _model_artifact_dir(exported, tmp_path)
  # A corrupt TFLite file fails while the bundle is being assembled.
  (model_uri / trainer.TFLITE_DIR / trainer.TFLITE_FILE).write_bytes(b"junk")
  push_dir = tmp_path / "serving"
  with pytest.raises(ValueError):
    pusher.push(str(model_uri), str(push_dir), None, {}, {})
  assert os.listdir(push_dir) == []


def test_unblessed_model_is_not_pushed(exported, tmp_path):
  model = standard_artifacts.Model()
  model.uri = str(_model_artifact_dir(exported, tmp_path))
  blessing = standard_artifacts.ModelBlessing()
  blessing.set_int_custom_property("blessed", 0)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed")
  push_dir = tmp_path / "serving"
  pusher.Executor().Do({"model": [model], "model_blessing": [blessing]},
                       {"pushed_model": [pushed]},
                       {"push_dir": str(push_dir), "run_config": "{}"})
  assert pushed.get_int_custom_property("pushed") == 0
  assert not push_dir.exists()
  blessing.set_int_custom_property("blessed", 1)
  pusher.Executor().Do({"model": [model], "model_blessing": [blessing]},
                       {"pushed_model": [pushed]},
                       {"push_dir": str(push_dir), "run_config": "{}"})
  assert pushed.get_int_custom_property("pushed") == 1
  assert os.path.isdir(pushed.get_string_custom_property("pushed_destination"))
