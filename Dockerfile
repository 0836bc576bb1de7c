# One image for every flexchain service; the service is chosen by the command:
#   docker run flexchain serve order
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 flexchain
WORKDIR /app
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY schemas ./schemas
RUN pip install --no-cache-dir '.[postgres]'
USER flexchain
ENV FLEXCHAIN_HTTP_HOST=0.0.0.0 FLEXCHAIN_DATA_DIR=/home/flexchain/data FLEXCHAIN_SCHEMAS_DIR=/app/schemas
ENTRYPOINT ["flexchain"]
CMD ["serve", "order"]
