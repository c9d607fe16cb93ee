# LSH-GAN image: serves the champion generator of a dataset from an MLflow model registry,
# and runs every pipeline step (lshgan, stages/*.py, dvc, mlflow) for the Kubeflow pipeline.
#
#   docker build -t lshgan:0.1.0 .
#   docker run --rm -p 5000:5000 -e MLFLOW_TRACKING_URI=http://mlflow.example:5000 \
#       -e DATASET=pbmc68k_reduced lshgan:0.1.0
#   curl -s localhost:5000/invocations -H 'Content-Type: application/json' \
#       -d '{"dataframe_split": {"columns": ["n_cells", "cell_type", "seed"], "data": [[5, "CD14+ Monocyte", 0]]}}'
#
# docs/tuning.md has the local-registry variant (mount the project at the same path).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    DVC_NO_ANALYTICS=1

WORKDIR /app

# The locked dependencies first: this layer changes only with requirements.lock.  PyPI's
# Linux torch wheel is the multi-GB CUDA build; PyTorch's CPU index has the same version
# as 2.13.0+cpu, which pip prefers.
COPY requirements.lock ./
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
        -r requirements.lock

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf src build

# What the pipeline steps read: stage scripts, parameters, the Optuna search space.
COPY stages ./stages
COPY conf ./conf
COPY params.yaml dvc.yaml ./

RUN groupadd --gid 10001 lshgan \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin lshgan \
    && chown 10001:10001 /app
USER 10001:10001

# The registered model lshgan-${DATASET} is served at its `champion` alias.
ENV DATASET=pbmc68k_reduced \
    MLFLOW_TRACKING_URI=http://mlflow:5000
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/ping', timeout=4)"]
CMD ["sh", "-c", "exec mlflow models serve -m \"models:/lshgan-${DATASET}@champion\" --env-manager local -h 0.0.0.0 -p 5000"]
