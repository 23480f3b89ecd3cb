"""The run page's files and artifacts: listed with sizes and short digests, downloadable with the
dashboard session (httpx with the login cookie, and one real click in Chromium)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.service import ServiceProcess, running_service
from tests.web.browser import chromium, log_in, new_page
from tests.web.session import logged_in

PROJECT = "pages"
FILE = b"<script>alert('not run by the page')</script>\n"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("run-files-page")) as started:
        yield started


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key(PROJECT)


@pytest.fixture(scope="module")
def run_id(service: ServiceProcess, key: str) -> str:
    """A run with a saved file and an output artifact (one stored file, one reference)."""
    found = f"r{uuid.uuid4().hex[:8]}"
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": PROJECT, "id": found}).status_code == 200
    digest = hashlib.sha256(FILE).hexdigest()
    assert service.api("PUT", f"/api/v1/projects/{PROJECT}/blobs/{digest}", key=key, content=FILE).status_code == 200
    assert service.api("PUT", f"/api/v1/runs/{PROJECT}/{found}/files/reports/<i>summary.html", key=key,
                       json={"sha256": digest}).status_code == 200
    response = service.api("POST", f"/api/v1/projects/{PROJECT}/artifacts", key=key, json={
        "name": "eval-set", "type": "dataset", "run_id": found, "aliases": ["golden"],
        "entries": [{"path": "data/x.html", "sha256": digest}, {"path": "raw", "ref": "s3://bucket/raw"}]})
    assert response.status_code == 200, response.text
    return found


def test_the_run_page_lists_files_and_artifacts_with_download_links(service: ServiceProcess, key: str,
                                                                    run_id: str) -> None:
    client = logged_in(service, key)
    try:
        section = client.get(f"/runs/{PROJECT}/{run_id}.json").json()["run_files"]
        [saved] = section["files"]
        digest = hashlib.sha256(FILE).hexdigest()
        assert (saved["name"], saved["size"], saved["short"]) == ("reports/<i>summary.html", len(FILE), digest[:12])
        [artifact] = section["logged"]
        assert (artifact["label"], artifact["aliases"], section["used"]) == ("eval-set:v0", ["latest", "golden"], [])
        html = client.get(f"/runs/{PROJECT}/{run_id}").text
        assert saved["download"] in html and "&lt;i&gt;summary.html" in html  # escaped, never markup
        assert "<i>summary" not in html
        assert "eval-set:v0" in html and digest[:12] in html and "s3://bucket/raw" in html

        got = client.get(saved["download"])
        assert got.status_code == 200 and got.content == FILE
        assert got.headers["content-type"] == "application/octet-stream"  # never rendered as a page
        assert got.headers["content-disposition"].startswith("attachment;")
        entry = client.get(artifact["entries"][0]["download"])
        assert entry.status_code == 200 and entry.content == FILE
        assert client.get(f"/runs/{PROJECT}/{run_id}/files/nope.txt").status_code == 404
        assert client.get(f"/runs/{PROJECT}/{run_id}/files/a/%2e%2e/b").status_code == 422
        assert client.get(f"/artifacts/{PROJECT}/eval-set/v0/files/raw").status_code == 404  # a reference
    finally:
        client.close()
    anonymous = httpx.get(f"{service.base_url}{saved['download']}", timeout=30)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    stranger = logged_in(service, service.create_key("elsewhere"))
    try:
        assert stranger.get(saved["download"]).status_code == 403
        assert stranger.get(artifact["entries"][0]["download"]).status_code == 403
    finally:
        stranger.close()


def test_a_click_on_a_file_downloads_it(service: ServiceProcess, key: str, run_id: str, tmp_path: Path) -> None:
    with chromium() as browser:
        page = new_page(browser, accept_downloads=True)
        log_in(page, service.base_url, key, next_path=f"/runs/{PROJECT}/{run_id}")
        link = page.locator("#files table.files a", has_text="summary")
        with page.expect_download() as info:
            link.click()
        download = info.value
        assert download.suggested_filename.endswith("summary.html")
        target = tmp_path / "downloaded.html"
        download.save_as(target)
        assert target.read_bytes() == FILE
