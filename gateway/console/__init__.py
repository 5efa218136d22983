"""The admin console at /console: static files in the package (static/), a session cookie
exchanged for the master key (session.py, endpoints.py). The page talks only to /admin, the
API the CLI uses, and to /console/session."""

from __future__ import annotations

from starlette.routing import Route

from gateway.console import assets, endpoints

ROUTES = [
    Route("/console", assets.index, methods=["GET"]),
    Route("/console/", assets.index, methods=["GET"]),
    Route("/console/assets/{name}", assets.asset, methods=["GET"]),
    Route("/console/session", endpoints.sign_in, methods=["POST"]),
    Route("/console/session", endpoints.show, methods=["GET"]),
    Route("/console/session", endpoints.sign_out, methods=["DELETE"]),
]
