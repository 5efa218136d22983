"""Running the gateway: config, serve, shutdown, scale-out, backends, metrics, logs, deploy."""
