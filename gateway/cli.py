"""The `gateway` command: `serve` runs the gateway, `check` validates a config and prints its
model table; `keys`, `usage` and `backends` are in their own modules."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from gateway import __version__, cli_admin
from gateway.backends import cli as backends_cli
from gateway.config import Config, ConfigError, default_config_path, load_config
from gateway.config.errors import Problem

EXIT_BAD_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway", description="An OpenAI-compatible gateway in front of many models.")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    _config_argument(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="auto", choices=["auto", "json", "text"],
                       help="json lines, or text; auto picks text on a terminal")

    check = commands.add_parser("check", help="validate a config and print its model table")
    _config_argument(check)

    profiles = commands.add_parser(
        "profiles", help="print every parameter against every provider profile (dialect)")
    profiles.add_argument("--markdown", action="store_true",
                          help="the docs page (docs/dialects.md) rather than a terminal table")
    cli_admin.add_commands(commands)
    backends_cli.add_commands(commands)

    args = parser.parse_args(argv)
    if args.command == "profiles":
        return print_profiles(args.markdown)
    if args.command in ("keys", "usage"):
        return cli_admin.run(args)
    try:
        path = resolve_config_path(args.config)
        config = load_config(path)
    except ConfigError as error:
        print(f"gateway: invalid config\n{error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.command == "check":
        print(describe(config))
        return 0
    if args.command == "backends":
        args.config_path = path.resolve()
        return backends_cli.run(args, config)
    return serve_forever(config, args)


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None,
        help="routes file (default: $GATEWAY_CONFIG, else ./routes.yaml, else the built-in demo)")


def resolve_config_path(given: Path | None) -> Path:
    """An explicit path must exist; with none, ./routes.yaml or the shipped demo config."""
    if given is None and os.environ.get("GATEWAY_CONFIG"):
        given = Path(os.environ["GATEWAY_CONFIG"])
    if given is not None:
        if not given.is_file():
            raise ConfigError(given, [Problem((), "no such file")])
        return given
    local = Path("routes.yaml")
    if local.is_file():
        return local
    print("gateway: no ./routes.yaml here; using the built-in demo config "
          f"({default_config_path()})", file=sys.stderr)
    return default_config_path()


def _redacted(url: str) -> str:
    """A store URL without its password."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}://{rest}"


def print_profiles(as_markdown: bool) -> int:
    from gateway.config.load import data_dir, load_profiles
    from gateway.dialect_table import markdown

    try:
        profiles = load_profiles([data_dir() / "providers", Path("providers")], os.environ)
    except ConfigError as error:
        print(f"gateway: invalid profile\n{error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    text = markdown(profiles)
    if not as_markdown:
        text = text.split("## Per profile", 1)[1]
    print(text, end="")
    return 0


def serve_forever(config: Config, args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.logs import setup_logging
    from gateway.serve_protocol import HEADER_TIMEOUT_ENV, GatewayHttpProtocol

    setup_logging(args.log_level, args.log_format)
    # Workers are separate processes: they find the (already validated) config and
    # the log settings here.
    os.environ["GATEWAY_CONFIG"] = str(config.source.resolve())
    os.environ["GATEWAY_LOG_LEVEL"] = args.log_level
    os.environ["GATEWAY_LOG_FORMAT"] = args.log_format
    os.environ[HEADER_TIMEOUT_ENV] = str(config.header_timeout)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Workers are processes: their metrics meet in files, and /metrics adds them up.
        directory = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=GatewayHttpProtocol,
        log_config=None,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        # Typed int, used as asyncio.wait_for's timeout: a float works.
        timeout_graceful_shutdown=config.shutdown_grace,  # type: ignore[arg-type]
    )
    return 0


def describe(config: Config) -> str:
    """The resolved model table, as `gateway check` prints it. No secrets."""
    lines = [f"config {config.source} (sha256 {config.digest})", "", "providers:"]
    width = max((len(n) for n in config.providers), default=8)
    for name, p in config.providers.items():
        where = p.base_url if p.profile.transport == "http" else f"built-in ({p.profile.transport})"
        auth = f"{p.profile.auth_header} key set" if p.secrets else "no key"
        lines.append(f"  {name:<{width}}  profile {p.profile.name:<15} {where}  [{auth}]")
    lines += ["", "models:"]
    for alias, route in config.routes.items():
        lines.append(f"  {alias}" + (f"  ({route.description})" if route.description else ""))
        for i, group in enumerate(route.groups):
            role = "primary" if i == 0 else f"fallback {i}"
            targets = ", ".join(
                f"{t.provider.name} -> {t.model}" + (f" (weight {t.weight:g})" if t.weight != 1 else "")
                + (f" (context {t.context_window})" if t.context_window else "")
                for t in group.targets)
            strategy = f" {group.strategy}" if len(group.targets) > 1 else ""
            if group.affinity is not None and len(group.targets) > 1:
                strategy += f", affinity by {group.affinity.by}"
            lines.append(f"    {i + 1}. {role}{strategy}: {targets}")
        attempts = route.retry.attempts
        lines.append(f"    up to {attempts} attempt{'s' if attempts != 1 else ''} a request")
    lines += ["", "keys:"]
    for key in config.keys.values():
        allowed = "all models" if "*" in key.models else ", ".join(key.models)
        limits = ", ".join(f"{k} {v}" for k, v in key.limits.items() if k != "models")
        lines.append(f"  {key.name}: {allowed}" + (f" ({limits})" if limits else ""))
    if not config.keys:
        lines.append("  (none in the file)")
    store = config.store
    lines += ["", "store: " + (f"redis {_redacted(store.url)} ({store.on_failure})"
                               if store.url else "memory (this process only)")]
    defaults = ", ".join(f"{k} {v}" for k, v in config.limits.items()
                         if k not in ("models", "completion_estimate"))
    lines.append("default limits per key: " + (defaults or "none"))
    master = "set" if config.master_digest else "not set (admin endpoints disabled)"
    lines += ["", f"master key (GATEWAY_MASTER_KEY): {master}",
              f"ok: {len(config.providers)} providers, {len(config.routes)} models, "
              f"{len(config.keys)} keys"]
    return "\n".join(lines)
