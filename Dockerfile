# The PUJA INDAH service image: the API (gunicorn), the relay and the projection consumers share it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PUJA_DATA_DIR=/var/lib/puja

WORKDIR /srv/puja
COPY setup.cfg pyproject.toml README.md ./
COPY domain ./domain
COPY service ./service
COPY projections ./projections
COPY consumers ./consumers
COPY app ./app
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/puja --create-home puja

USER puja
EXPOSE 8000
CMD ["puja", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--threads", "8"]
