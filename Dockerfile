FROM python:3.11-slim-bookworm
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# WeasyPrint's pango, the CJK fonts certificates embed, and HarfBuzz's fast font subsetting.
RUN apt-get update && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk libharfbuzz-subset0 \
    && rm -rf /var/lib/apt/lists/*
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
