"""The recsys pipeline in the user's shell: the config, the TFX DAG built
from it, the runners, the readers of a run's results, the benchmarks and the
`recsys` command. What runs inside a TFX step lives in components/."""
import os

# See components/__init__.py: tf_keras must be selected before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# The checkout (in the image: the project's install directory).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
