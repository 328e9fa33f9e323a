"""Trainer input and fitting: the training order does not depend on how Beam
wrote it; the learning rate's schedule."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.user_modules.training import canonical_order, decaying, fit


def _examples(count=200, seed=3):
  rng = np.random.default_rng(seed)
  features = {"context_item_id": rng.integers(0, 30, size=(count, 5)),
              "context_rating": rng.integers(0, 6, size=(count, 5))}
  labels = rng.integers(2, 30, size=count)
  return features, labels


def _ordered(features, labels):
  order = canonical_order(features, labels)
  return {k: v[order] for k, v in features.items()}, labels[order]


def test_any_input_order_gives_the_same_sequence():
  features, labels = _examples()
  want_features, want_labels = _ordered(features, labels)
  for seed in range(5):
    permutation = np.random.default_rng(seed).permutation(len(labels))
    got_features, got_labels = _ordered(
        {k: v[permutation] for k, v in features.items()}, labels[permutation])
    np.testing.assert_array_equal(got_labels, want_labels)
    for name, values in want_features.items():
      np.testing.assert_array_equal(got_features[name], values)


def test_examples_differing_in_one_feature_only_keep_a_fixed_order():
  # Same items and label, different ratings: ordered by content, not input.
  features = {"context_item_id": np.array([[5, 6], [5, 6]]),
              "context_rating": np.array([[4, 1], [4, 2]])}
  labels = np.array([7, 7])
  first = canonical_order(features, labels)
  second = canonical_order({k: v[::-1] for k, v in features.items()},
                           labels[::-1])
  assert features["context_rating"][first].tolist() == (
      features["context_rating"][::-1][second].tolist())


def test_the_order_is_a_permutation_and_not_sorted_by_label():
  features, labels = _examples(count=500)
  order = canonical_order(features, labels)
  assert sorted(order.tolist()) == list(range(500))
  # Hash-ordered: well mixed, so the labels do not come out sorted.
  assert not np.all(np.diff(labels[order]) >= 0)


def test_the_learning_rate_decays_by_epoch_and_the_history_is_json(tmp_path):
  model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
  model.compile(optimizer=keras.optimizers.Adam(0.5), loss="mse")
  data = tf.data.Dataset.from_tensor_slices(
      (np.ones((4, 2)), np.ones((4, 1)))).batch(2)
  history, _, _ = fit(model, data, data, epochs=3, patience=3,
                      max_minutes=10, monitor="val_loss",
                      log_dir=str(tmp_path), lower_is_better=True,
                      schedule=[decaying(0.01, 0.5)])
  assert history["lr"] == pytest.approx([0.01, 0.005, 0.0025])
  assert json.loads(json.dumps(history)) == history
