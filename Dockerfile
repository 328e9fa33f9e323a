# The image every Kubeflow Pipelines step runs in: the project, installed at
# /opt/recsys (pipeline/runners/kubeflow.py IMAGE_ROOT) with the pinned stack, so that
# the compiled spec imports executors, preprocessing_fn and run_fn by module
# path. The embedded samples and the curated schemas come along; real data is
# read from a URI (--data-dir gs://...).
#
# It is also the worker image of remote Beam runners (Dataflow's
# --sdk_container_image, Flink and Spark's --environment_config): Beam's
# SDK harness boot program is its entrypoint. Kubeflow steps set their own
# command (python -m tfx...), which takes its place.
#
#   docker build -t REGISTRY/ondevice-recsys:TAG .
FROM apache/beam_python3.10_sdk:2.59.0 AS beam_sdk

FROM python:3.10-slim
COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/recsys

# Dependencies first, so that a code change rebuilds only the last layers.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p components pipeline \
 && touch components/__init__.py pipeline/__init__.py \
 && python -m pip install "pip==24.0" \
 && python -m pip install -c constraints.txt -e .

COPY components components
COPY pipeline pipeline
COPY schemas schemas
COPY data data
