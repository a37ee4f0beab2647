# syntax=docker/dockerfile:1.7
# One image for every tickwire service, built from the repository root:
#   docker build -t tickwire .
#   docker run tickwire tickwire-ingest        (or tickwire-processor, tickwire-gateway)

# --- build: resolve the locked dependencies, then install the project as a wheel -------
FROM python:3.11-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project --no-editable
COPY libs ./libs
COPY services ./services
COPY tools ./tools
RUN uv sync --frozen --no-editable

# --- runtime: just the virtualenv, as an unprivileged user ------------------------------
FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 tickwire \
 && useradd --system --uid 10001 --gid tickwire --no-create-home tickwire
COPY --from=build /src/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 TICKWIRE_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8080 8081 8082
CMD ["tickwire-ingest"]
