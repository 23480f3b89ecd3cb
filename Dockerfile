FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alerts ./alerts
COPY sdk ./sdk
COPY config ./config
RUN pip install --no-cache-dir .
EXPOSE 8080
ENV ALERTS_SERVER__HOST=0.0.0.0
CMD ["alerts", "serve", "--config", "/app/config/alerts.yaml"]
