# One image for every flexchain service; the service is chosen by the command:
#   docker build -t flexchain .
#   docker run flexchain serve order        (or inventory, presale, commission, loyalty; `clock`, `topics`)
# Non-root (uid 10001), no build tools left behind. /health = process up, /ready = state rebuilt.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 10001 flexchain \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin flexchain

WORKDIR /app
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
# the published Avro schemas: read at run time from FLEXCHAIN_SCHEMAS_DIR (they are not in the wheel)
COPY schemas ./schemas
# the `postgres` extra: psycopg for FLEXCHAIN_SNAPSHOT_URL=postgresql+psycopg://...
# then drop flexchain.tools (local broker, demo, PKI, AsyncAPI, simulator): a service never imports it
RUN pip install '.[postgres,notify]' && rm -rf /app/libs /app/services /app/build \
 && python -c "import flexchain.tools as t, os, shutil; shutil.rmtree(os.path.dirname(t.__file__))"

USER 10001:10001
ENV FLEXCHAIN_HTTP_HOST=0.0.0.0 \
    FLEXCHAIN_DATA_DIR=/home/flexchain/data \
    FLEXCHAIN_SCHEMAS_DIR=/app/schemas
EXPOSE 8081 8082 8083 8084 8085
ENTRYPOINT ["flexchain"]
CMD ["serve", "order"]
