# One image for every Python service of cardiostream (simulator, processor,
# inference worker, CLI). CPU-only torch by default so the image stays small and
# runs anywhere; for the GPU inference worker build with
#   docker build --build-arg TORCH_VARIANT=cu132 -t cardiostream:0.1.0-cu132 .
# (TORCH_VARIANT selects the PyTorch wheel index: cpu, cu126, cu132, ...; TORCH_VERSION
# matches the torch the models were exported and tested with).
FROM python:3.11.10-slim-bookworm

ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.15.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from its own wheel index, so the layer is cached across code edits.
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"

WORKDIR /opt/cardiostream
COPY pyproject.toml README.md ./
COPY cardiostream ./cardiostream
COPY streamer ./streamer
COPY inference ./inference
COPY training ./training
COPY dashboards ./dashboards
# Non-editable install: the services import the installed package, not the tree.
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/cardiostream --create-home cardiostream

# Models are mounted at /models (compose: ./models), so a new model needs no rebuild.
ENV CARDIOSTREAM_PATHS__MODEL_DIR=/models/default \
    CARDIOSTREAM_PATHS__DATA_DIR=/data \
    CARDIOSTREAM_PATHS__RUN_DIR=/var/lib/cardiostream/run \
    CARDIOSTREAM_PATHS__CACHE_DIR=/var/lib/cardiostream/cache

USER cardiostream
WORKDIR /var/lib/cardiostream
EXPOSE 9101 9102 9103
ENTRYPOINT ["cardiostream"]
CMD ["--help"]
