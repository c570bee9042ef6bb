FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=pulse.settings.production
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml constraints.txt README.md ./
COPY pulse pulse
COPY tenants tenants
COPY ingestion ingestion
COPY scoring scoring
COPY learning learning
COPY alerts alerts
COPY insights insights
COPY monitoring monitoring
COPY simulator simulator
COPY templates templates
COPY manage.py ./
RUN pip install --no-cache-dir -c constraints.txt . && python manage.py collectstatic --noinput || true
EXPOSE 8000
CMD ["python", "-m", "pulse.web", "--host", "0.0.0.0", "--port", "8000"]
