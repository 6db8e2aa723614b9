# agw container image.
#
#   docker build -t agw:0.1.0 .
#   docker run --rm -p 8080:8080 -p 15000:15000 \
#       -v "$PWD/config.yaml:/etc/agw/config.yaml:ro" agw:0.1.0
#
# Two stages: the builder compiles the Cython core (agw/_fastjwt.pyx) and installs agw with its
# dependencies into a virtual environment at /opt/venv; the runtime stage is a slim Python that only
# receives that environment, so no compiler or build tooling ships in the final image.

# Both stages must share one CPython minor version: the venv and the compiled extension are copied as is.
ARG PYTHON_TAG=3.11

# The full python image already carries gcc and the libc headers (it is built on buildpack-deps), so the
# builder needs no apt-get: nothing to pin against a Debian archive that drops old package versions.
FROM python:${PYTHON_TAG} AS builder

# The image build needs no pip cache (a layer is thrown away anyway) and no version nag.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
# The context is limited by .dockerignore to what the package build reads (pyproject.toml, setup.py,
# README.md, agw/).
COPY . .

# pip builds the wheel in an isolated environment (setuptools, wheel, Cython from [build-system]),
# compiling agw._fastjwt, then installs it and the runtime dependencies into the venv. The import check
# runs isolated (-I) so that it loads the installed extension, not the source tree in the working dir.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/python -I -c "import agw._fastjwt"


FROM python:${PYTHON_TAG}-slim AS runtime

LABEL org.opencontainers.image.title="agw" \
      org.opencontainers.image.description="HTTP/1.1 reverse proxy that authenticates every request with a JWT" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify the user without a passwd lookup.
RUN groupadd --system --gid 10001 agw \
    && useradd --system --uid 10001 --gid agw --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin agw \
    && mkdir -p /etc/agw

COPY --from=builder /opt/venv /opt/venv

# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only (the Kubernetes Deployment mounts it so),
# and pip already compiled the bytecode at build time.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001

# 8080: the proxy listener of the default config; 15000: the admin listener (/healthz, /readyz, /metrics).
EXPOSE 8080 15000

# slim has no curl; urllib raises on a refused connection or a non-2xx status, so the exit code is 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:15000/healthz', timeout=2)"]

# The config is expected at /etc/agw/config.yaml: bind-mount a file or mount a ConfigMap at /etc/agw.
# The admin listener binds all interfaces so that kubelet probes and Prometheus can reach it.
ENTRYPOINT ["agw"]
CMD ["run", "-f", "/etc/agw/config.yaml", "--admin", "0.0.0.0:15000"]
