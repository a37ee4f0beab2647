"""Metrics, health and readiness shared by the services."""
