"""The Keras models and their parts (TensorFlow Recommenders' layout: one
small layer per part), and export/: what a trained model ships as."""
