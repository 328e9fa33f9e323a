"""Shared pytest setup: select legacy Keras and quiet TensorFlow's C++ logs
before anything imports TensorFlow."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
