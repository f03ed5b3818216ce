"""Prometheus metrics of what ecmptui measures: the prober's requests, the deployment's
status, long-lived flows and each action's cost (`prometheus_client`, scraped over HTTP)."""
