"""Monitoring: the consumer lag of the streaming jobs, measured from outside them (lag exporter), and where Prometheus finds every process."""
