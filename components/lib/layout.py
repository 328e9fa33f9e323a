"""Names of the files the steps write, inside their artifacts and in the
pushed bundle: defined once here for every writer and reader (components,
the command line, reports, benchmarks)."""

# --- Inside artifacts ----------------------------------------------------------
# Beside an ExampleGen's Examples: what was read, and every reported line.
INGESTION_REPORT = "ingestion_report.json"
# Beside Sessionize's sessions: counts of users, examples and what was dropped.
SESSIONIZE_REPORT = "sessionize_report.json"
# Beside CandidateGen's examples: per split, how many and how often the label
# is among the candidates.
CANDIDATES_REPORT = "candidates_report.json"
# Sessionize's Schema artifact: the session examples' schema.
SESSIONS_SCHEMA = "schema.pbtxt"
# The ItemCatalog artifact, and the bundle's copy of it.
CATALOG = "items.json"
# A Model artifact: the TFLite conversion (beside TFX's Format-Serving), the
# training summary and the settings that made the model.
TFLITE_DIR = "Format-TFLite"
TFLITE_MODEL = "model.tflite"
# Beside a retrieval model.tflite (in the artifact and the bundle): how an app
# maps raw values to the model's index inputs (input_mapping.py).
INPUT_MAPPING = "input_mapping.json"
# In a retrieval Model's Format-TFLite: the SavedModel of the on-device
# signature alone and the train examples that calibrate int8 quantization,
# from which model.tflite is converted (again, by the benchmarks).
ONDEVICE_SAVED_MODEL = "ondevice_saved_model"
REPRESENTATIVE_INPUTS = "representative_inputs.npz"
TRAINING_SUMMARY = "training_summary.json"
# In the training summary: the newest span of the data the model was trained
# on (data in spans; absent when the pipeline did not resolve spans).
TRAINED_THROUGH_SPAN = "trained_through_span"
# In a ranker's training summary: the retrieval Model (its URI) it follows.
RETRIEVAL_MODEL_URI = "retrieval_model_uri"
# In a retrieval Model: its weights and the vocabularies of its embedding
# tables, what a later Trainer warm-starts from (warm_start.py).
WARM_START_WEIGHTS = "warm_start_weights.npz"
WARM_START_TABLES = "warm_start_tables.json"
# The ForwardEvaluator's ModelEvaluation: what it evaluated, or why not.
FORWARD_STATUS = "forward_status.json"
MODEL_SETTINGS = "model_settings.json"
# The TwoStageEvaluation artifact.
TWO_STAGE_METRICS = "two_stage_metrics.json"
# What TFX's Tuner writes (tuner.enabled): its TunerResults artifact (every
# trial's score and values) and its HyperParameters artifact (the best).
TUNER_RESULTS = "tuner_results.json"
BEST_HYPERPARAMETERS = "best_hyperparameters.txt"

# --- The pushed bundle: <push dir>/<version>/ ---------------------------------
# model.tflite (TFLITE_MODEL), items.json (CATALOG, retrieval only), and:
BUNDLE_METADATA = "metadata.json"
BUNDLE_SAVED_MODEL = "saved_model"
# The rating model's versions: <push dir>/ranking/<version>/.
RANKING_DIR = "ranking"
# The next-item ranker's versions: <push dir>/ranker/<version>/.
RANKER_DIR = "ranker"
