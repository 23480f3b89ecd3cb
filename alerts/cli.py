"""The ``alerts`` command. Exit codes: 0 ok, 1 invalid input or failed check, 2 usage error."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from alerts import __version__
from alerts.config import AlertsSettings, load_settings, resolve_config_path
from alerts.errors import ConfigError, StorageError
from alerts.model import stop_text

log = logging.getLogger("alerts")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alerts", description="Runwatch alerting service")
    parser.add_argument("--version", action="version", version=f"alerts {__version__}")
    config_help = "config file (default: $ALERTS_CONFIG, else ./alerts.yaml, else built-in defaults)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help=config_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    check = sub.add_parser("check-config", parents=[common], help="validate a config file")
    check.add_argument("file", nargs="?")

    check_rules = sub.add_parser("check-rules", parents=[common], help="validate rule files")
    check_rules.add_argument("files", nargs="+", metavar="FILE")

    test_rules = sub.add_parser("test-rules", parents=[common], help="run rule unit-test files")
    test_rules.add_argument("files", nargs="+", metavar="FILE")

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", parents=[common], help="create a key and print it (only it)")
    create.add_argument("--project", help="the project the key may write and read")
    create.add_argument("--admin", action="store_true", help="a key that may do everything")
    keys_sub.add_parser("list", parents=[common], help="list keys (ids, never secrets)")
    revoke = keys_sub.add_parser("revoke", parents=[common], help="revoke a key by id")
    revoke.add_argument("key_id")

    silence = sub.add_parser("silence", help="manage silences")
    silence_sub = silence.add_subparsers(dest="silence_command", required=True, metavar="ACTION")
    add = silence_sub.add_parser("add", parents=[common], help="silence matching alerts; prints the id")
    add.add_argument("--match", action="append", required=True, metavar="MATCHER",
                     help="label matcher: k=v, k!=v, k=~regex, k!~regex (repeatable; all must match)")
    add.add_argument("--for", dest="duration", default="1h", help="how long (default 1h)")
    add.add_argument("--comment", required=True)
    add.add_argument("--author", default=os.environ.get("USER") or "cli")
    listing = silence_sub.add_parser("list", parents=[common], help="list silences")
    listing.add_argument("--all", action="store_true", help="include expired silences")
    expire = silence_sub.add_parser("expire", parents=[common], help="end a silence now")
    expire.add_argument("silence_id")

    runs = sub.add_parser("runs", help="act on runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    stop = runs_sub.add_parser("stop", parents=[common],
                               help="ask a running run to stop: its SDK stops it at its next send (state stopped)")
    stop.add_argument("run", metavar="PROJECT/RUN", help="the run, as project/run-id")
    stop.add_argument("--reason", required=True, help="why: stored with the run and shown")
    stop.add_argument("--author", default=os.environ.get("USER") or "cli")

    database = sub.add_parser("db", help="the database: migrate, back up")
    database_sub = database.add_subparsers(dest="db_command", required=True)
    database_sub.add_parser("upgrade", parents=[common], help="migrate the schema to this release (serve does it too)")
    backup = database_sub.add_parser("backup", parents=[common],
                                     help="copy a SQLite database while the service runs (online backup)")
    backup.add_argument("path", help="the file to write (must not exist)")

    send_test = sub.add_parser("send-test", parents=[common], help="send a sample notification to a channel")
    send_test.add_argument("channel")

    demo = sub.add_parser("demo", parents=[common],
                          help="run the service with a stream of demo runs that raise alerts")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.add_argument("--once", action="store_true", help="stop when the demo runs are done")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet = args.command not in ("serve", "demo", "send-test")  # e.g. `keys create` prints only the key
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "apscheduler", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "check-config":
            return _check_config(args.file or args.config)
        if args.command == "check-rules":
            return _check_rules(args.files, args.config)
        if args.command == "test-rules":
            from alerts.rules.testing import run_test_files

            return int(run_test_files([Path(f) for f in args.files], out=sys.stdout))
        settings = _settings(args.config)
        if args.command == "serve":
            return _serve(settings, args.config, args.host, args.port)
        if args.command == "keys":
            return asyncio.run(_keys(settings, args))
        if args.command == "silence":
            return asyncio.run(_silence(settings, args))
        if args.command == "runs":
            return asyncio.run(_stop_run(settings, args))
        if args.command == "db":
            from alerts.storage.admin import backup_database, upgrade_database

            if args.db_command == "upgrade":
                return asyncio.run(upgrade_database(settings.storage.url, out=sys.stdout))
            return backup_database(settings.storage.url, Path(args.path), out=sys.stdout)
        if args.command == "send-test":
            from alerts.notify.send_test import send_test

            return asyncio.run(send_test(settings, args.channel, out=sys.stdout))
        if args.command == "demo":
            from alerts.demo import run_demo

            return run_demo(settings, host=args.host, port=args.port, once=args.once)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


def _settings(config: str | None) -> AlertsSettings:
    return load_settings(resolve_config_path(config))


def _check_config(file: str | None) -> int:
    from alerts.service import load_ruleset

    path = resolve_config_path(file)
    settings = load_settings(path)
    ruleset = load_ruleset(settings)
    print(f"{path or '<built-in defaults>'}: ok ({len(settings.channels)} channels, "
          f"{len(ruleset.rules)} rules in {len(ruleset.files)} files)")
    for name, count in ruleset.files.items():
        print(f"{name}: ok ({count} rules)")
    return 0


def _check_rules(files: list[str], config: str | None) -> int:
    """Validate rule files; with --config, ``notify`` channel names are checked against it too."""
    from alerts.rules.loader import load_rules

    channels = set(load_settings(Path(config)).channels) if config else None
    ruleset = load_rules([Path(f) for f in files], channels=channels)
    for name, count in ruleset.files.items():
        print(f"{name}: ok ({count} rules)")
    return 0


def apply_overrides(settings: AlertsSettings, host: str | None, port: int | None) -> None:
    if host is not None:
        settings.server.host = host
    if port is not None:
        settings.server.port = port


def _serve(settings: AlertsSettings, config_path: str | None, host: str | None, port: int | None) -> int:
    import uvicorn

    from alerts.api.app import create_app
    from alerts.observability.logs import configure_service_logging
    from alerts.service import Service

    def reread() -> AlertsSettings:
        fresh = _settings(config_path)
        apply_overrides(fresh, host, port)
        return fresh

    apply_overrides(settings, host, port)
    configure_service_logging(settings.logging)
    service = Service(settings, settings_source=reread)
    # Open (and migrate) storage before binding, so a bad storage URL exits 1 with nothing bound.
    asyncio.run(_probe_storage(settings))
    # JSON lines: uvicorn's loggers propagate to ours (log_config=None), so every line is one object.
    json_lines = settings.logging.format == "json"
    config = uvicorn.Config(create_app(service), host=settings.server.host, port=settings.server.port,
                            log_level=settings.logging.level, access_log=False, lifespan="on",
                            log_config=None if json_lines else uvicorn.config.LOGGING_CONFIG)
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


async def _probe_storage(settings: AlertsSettings) -> None:
    from alerts.storage import open_store

    store = open_store(settings.storage.url)
    await store.open()
    await store.close()


async def _silence(settings: AlertsSettings, args: argparse.Namespace) -> int:
    """Silences are written to the store; a running service picks them up within a second."""
    from datetime import UTC, datetime

    from alerts.durations import parse_duration
    from alerts.silence.matchers import MatcherError, parse_matchers
    from alerts.silence.silences import Silence, new_silence
    from alerts.storage import open_store

    store = open_store(settings.storage.url)
    await store.open()
    try:
        now = time.time()
        if args.silence_command == "add":
            try:
                matchers = parse_matchers(args.match)
                silence = new_silence(matchers, starts_at=now, ends_at=now + parse_duration(args.duration),
                                      created_by=args.author, comment=args.comment, now=now)
            except (MatcherError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            await store.save_silence(silence.to_json())
            print(silence.id)
            return 0
        silences = [Silence.from_json(row) for row in await store.list_silences()]
        if args.silence_command == "list":
            for s in silences:
                if args.all or s.state(now) != "expired":
                    ends = datetime.fromtimestamp(s.ends_at, UTC).isoformat(timespec="seconds")
                    shown = ",".join(str(m) for m in s.matchers)
                    print(f"{s.id}\t{s.state(now)}\t{shown}\tuntil {ends}\t{s.created_by}\t{s.comment}")
            return 0
        found = [s for s in silences if s.id == args.silence_id]
        if not found:
            print(f"error: no silence with id {args.silence_id}", file=sys.stderr)
            return 1
        silence = found[0]
        silence.ends_at = min(silence.ends_at, now)
        silence.starts_at = min(silence.starts_at, silence.ends_at)
        silence.updated_at = now
        await store.save_silence(silence.to_json())
        print(f"expired {silence.id}")
        return 0
    finally:
        await store.close()


async def _stop_run(settings: AlertsSettings, args: argparse.Namespace) -> int:
    """The request is written to the store; a running service hands it to the run's SDK within a second."""
    from alerts.actions.stop import RunStopper
    from alerts.ingest.runs import RunIngest
    from alerts.storage import open_store

    project, slash, run_id = args.run.partition("/")
    if not slash or not project or not run_id:
        print(f"error: expected PROJECT/RUN, got {args.run!r}", file=sys.stderr)
        return 2
    store = open_store(settings.storage.url)
    await store.open()
    try:
        run = await store.get_run(project, run_id)
        if run is None:
            print(f"error: no run {project}/{run_id}", file=sys.stderr)
            return 1
        stopper = RunStopper(store, RunIngest(store, heartbeat_timeout=settings.runs.heartbeat_timeout))
        outcome = await stopper.stop(run, by=f"{args.author} (alerts runs stop)", reason=args.reason)
        if outcome.request is None:
            print(f"run {project}/{run_id} is {run.state.value}: nothing to stop")
        elif outcome.requested:
            print(f"asked run {project}/{run_id} to stop")
        else:
            print(f"run {project}/{run_id} was already asked to stop {stop_text(outcome.request)}")
        return 0
    finally:
        await store.close()


async def _keys(settings: AlertsSettings, args: argparse.Namespace) -> int:
    from alerts.keys import create_key
    from alerts.storage import open_store

    store = open_store(settings.storage.url)
    await store.open()
    try:
        if args.keys_command == "create":
            if not args.project and not args.admin:
                print("error: give --project P (a project key) or --admin", file=sys.stderr)
                return 2
            _key, secret = await create_key(store, project=args.project, admin=args.admin)
            print(secret)
            return 0
        if args.keys_command == "list":
            for key in await store.list_api_keys():
                state = "revoked" if key.revoked_at else "active"
                scope = "admin" if key.admin else f"project={key.project}"
                print(f"{key.id}\t{scope}\t{state}")
            return 0
        if args.keys_command == "revoke":
            if await store.revoke_api_key(args.key_id, time.time()):
                print(f"revoked {args.key_id}")
                return 0
            print(f"error: no active key with id {args.key_id}", file=sys.stderr)
            return 1
    finally:
        await store.close()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

