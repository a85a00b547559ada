# Image for docker-compose.yml: the official Airflow image plus tierhouse's locked runtime
# dependencies (requirements.lock: no test, lint or sample-data tools; those are in requirements-dev.lock).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.lock pyproject.toml README.md /opt/tierhouse/
COPY --chown=airflow:root plugins /opt/tierhouse/plugins
RUN pip install --no-cache-dir --require-hashes -r /opt/tierhouse/requirements.lock \
 && pip install --no-cache-dir --no-deps -e /opt/tierhouse

WORKDIR /opt/tierhouse
