"""What the service tells its operators about itself: ``/metrics`` for Prometheus."""
