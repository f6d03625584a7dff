FROM python:3.11-slim-bookworm
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY registry registry
COPY api api
COPY migrations migrations
# Editable: the code and migrations/ stay in /app, where the registry finds its migrations.
RUN pip install --no-cache-dir -e .
RUN useradd --system --uid 10001 registry
USER registry
EXPOSE 8000
CMD ["sh", "-c", "registry migrate && registry serve --host 0.0.0.0 --port 8000 --workers 2"]
