# Prometheus from Debian's packages, for hosts without Docker Hub (compose.yaml's default is
# the prom/prometheus image; PROMETHEUS_IMAGE=costream-prometheus:bookworm selects this one).
ARG BASE_IMAGE=costream-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
