"""Refresh the dashboard's vendored JavaScript from npm at pinned versions.

    python -m alerts.web.vendor            # fetch the pinned releases (needs npm and the registry)
    python -m alerts.web.vendor --check    # exit 1 if a vendored file is missing

The dashboard fetches nothing at run time (it works air-gapped): each library's release files live in
``static/vendor/`` with the version in the file name (so they can be cached for a year) and its licence
text beside them. To upgrade, change a version below, run this, and change nothing else: templates
take the file names from :data:`FILES`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).parent / "static" / "vendor"

PACKAGES = {"uplot": "1.6.32", "htmx.org": "2.0.11"}
"""npm package -> pinned version."""

FILES: dict[str, tuple[str, str, str]] = {
    # name in templates: (package, file inside the package tarball, vendored file name)
    "uplot_js": ("uplot", "package/dist/uPlot.iife.min.js", "uPlot-{version}.iife.min.js"),
    "uplot_css": ("uplot", "package/dist/uPlot.min.css", "uPlot-{version}.min.css"),
    "uplot_license": ("uplot", "package/LICENSE", "uPlot-{version}.LICENSE.txt"),
    "htmx_js": ("htmx.org", "package/dist/htmx.min.js", "htmx-{version}.min.js"),
    "htmx_license": ("htmx.org", "package/LICENSE", "htmx-{version}.LICENSE.txt"),
}


def vendored_name(name: str) -> str:
    """The file name under ``static/vendor/`` of one of :data:`FILES`."""
    package, _member, pattern = FILES[name]
    return pattern.format(version=PACKAGES[package])


def refresh() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for package, version in PACKAGES.items():
            subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
        for old in VENDOR.glob("*"):
            old.unlink()
        for name, (package, member, _pattern) in FILES.items():
            tarball = Path(tmp) / f"{package}-{PACKAGES[package]}.tgz"
            with tarfile.open(tarball) as archive:
                source = archive.extractfile(member)
                if source is None:
                    raise SystemExit(f"{tarball.name} has no {member}")
                with (VENDOR / vendored_name(name)).open("wb") as target:
                    shutil.copyfileobj(source, target)
            print(f"vendored {vendored_name(name)}")


def missing() -> list[str]:
    return [vendored_name(name) for name in FILES if not (VENDOR / vendored_name(name)).is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alerts.web.vendor", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that every vendored file is present")
    args = parser.parse_args(argv)
    if args.check:
        absent = missing()
        for name in absent:
            print(f"missing static/vendor/{name}", file=sys.stderr)
        return 1 if absent else 0
    VENDOR.mkdir(parents=True, exist_ok=True)
    refresh()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
