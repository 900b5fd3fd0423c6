# One image for every Kizuna component: `kizuna serve <component>`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY store ./store
COPY ingest ./ingest
COPY devices ./devices
COPY rules ./rules
COPY notify ./notify
COPY api ./api
COPY dashboard ./dashboard
COPY simulator ./simulator
COPY bench ./bench
RUN pip install . && useradd --system --uid 10001 kizuna
USER kizuna
ENTRYPOINT ["kizuna"]
