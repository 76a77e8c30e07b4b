"""The web server: health and metrics for operations (health.py); the member and staff
pages build on the same app (issue 15)."""
