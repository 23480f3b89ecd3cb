"""The ``runwatch`` command: ``runwatch login [--host H] [KEY]`` and ``runwatch sync PATH``."""

from __future__ import annotations

import argparse
import sys

from .auth import login
from .errors import Error

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runwatch", description="Runwatch SDK command line")
    sub = p.add_subparsers(dest="command", required=True)
    lg = sub.add_parser("login", help="verify an API key and store it in ~/.config/runwatch/credentials.json")
    lg.add_argument("key", nargs="?", help="API key (prompted for on a terminal when omitted)")
    lg.add_argument("--host", help="service base URL (default: RUNWATCH_BASE_URL or http://127.0.0.1:8080)")
    lg.add_argument("--relogin", action="store_true", help="ask for a new key even if one is configured")
    sy = sub.add_parser("sync", help="upload spooled runs (offline runs or undelivered data)")
    sy.add_argument("path", help="a run directory (./runwatch/run-<id>) or a directory of runs (./runwatch)")
    sy.add_argument("--host", help="service base URL (default: RUNWATCH_BASE_URL or the URL the run used)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "login":
            login(args.key, host=args.host, relogin=args.relogin)
            print("runwatch: API key verified and stored")
            return 0
        if args.command == "sync":
            from .sync import sync_path

            results = sync_path(args.path, base_url=args.host)
            if not results:
                print(f"runwatch: nothing to sync under {args.path}")
                return 0
            failed = 0
            for r in results:
                status = "ok" if r.ok else f"FAILED: {r.error}"
                print(f"{r.run_dir}: {r.project}/{r.run_id} records={r.records} alerts={r.alerts} {status}")
                failed += not r.ok
            return 1 if failed else 0
    except Error as exc:
        print(f"runwatch: error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
