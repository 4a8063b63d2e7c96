# syntax=docker/dockerfile:1
# The sluice production image: one image for `sluice migrate`, `sluice api` and
# `sluice worker` (see docker-compose.yml). Build: `docker compose build` or
#   docker build -t sluice:latest .
# CPU-only image: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
FROM python:3.11-slim

# torch goes in first, from PyTorch's own wheel index, so that `pip install .` below finds
# it already satisfied and never swaps in PyPI's default build.
ARG TORCH_SPEC="torch==2.13.0"
# PyPI's Linux x86_64 torch wheels are CUDA builds with their CUDA libraries bundled; the
# host's NVIDIA driver must support that CUDA version (the "CUDA Version" in the host's
# nvidia-smi header is the highest it supports). For another CUDA version, point this at
# https://download.pytorch.org/whl/cuXYZ where that index carries TORCH_SPEC.
ARG TORCH_INDEX_URL="https://pypi.org/simple"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

# The project is installed from a bind mount, so no source tree stays in the image
# (rw: pip builds in the tree; what it writes there is discarded). The client (client/, the
# sluice-client distribution sluice depends on) is named beside it, so pip takes it from here.
RUN --mount=type=bind,source=.,target=/src,rw \
    --mount=type=cache,target=/root/.cache/pip \
    pip install /src/client /src

# Non-root. The Hugging Face cache directory exists in the image, owned by this user, so a
# named volume mounted over it starts with the right owner.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin sluice \
    && mkdir -p /home/sluice/.cache/huggingface \
    && chown -R sluice:sluice /home/sluice
USER sluice
WORKDIR /home/sluice

EXPOSE 8000
ENTRYPOINT ["sluice"]
CMD ["--help"]
