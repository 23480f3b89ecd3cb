"""The HTTP API against its own contract: schemathesis fuzzes a real service from its ``/openapi.json``.

Every operation gets generated requests, valid and invalid (schemathesis' coverage and fuzzing phases,
one subtest per operation), with an admin key and, shorter, with a project key; then workflows follow
the schema's links (its stateful phase, run by its own engine: ``st run``). Every check runs on every
answer: no 5xx; only documented status codes; the documented content type, body and headers; valid
input accepted and invalid input refused; 405 and a true ``Allow`` for a method a path lacks; no access
without the key; a run just created is found. A few checks are told more, or switched off, for an
operation whose schema cannot say what makes a request valid (``CONFIG`` says why, each time).

Bounded for CI: a fixed number of examples per operation and a fixed seed, so a run is reproducible;
a failure names its operation and shows a curl line that repeats it.
"""

from __future__ import annotations

import string
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis import Case

from tests.support.service import ServiceProcess, running_service

# schemathesis.toml, for both the tests in this process and the `st run` of the workflows.
CONFIG = string.Template("""
seed = 20261203
cache.enabled = false  # nothing learnt in one run changes the next: reproducible
auth.openapi.ApiKey.bearer = "$key"
# The Alertmanager API (/api/v2) also takes the key as the password of HTTP basic auth.
auth.openapi.KeyAsPassword.username = "schemathesis"
auth.openapi.KeyAsPassword.password = "$key"

[generation]
max-examples = 30  # per operation in the fuzzing phase; with the coverage phase some 2,300 requests
database = "none"
# The API ignores query parameters it does not know, as it ignores unknown body fields (a newer SDK
# may send more): an extra parameter is not invalid input here.
allow-extra-parameters = false

[phases.stateful]
max-steps = 8

# An invalid body may also be refused for its size before anything reads it: a string just past its
# maxLength, JSON-escaped as surrogate pairs (12 bytes a character), passes server.max_body_bytes (413).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

# Refusals the schema cannot express. JSON Schema describes one value at a time; these depend on what is
# stored, on the clock, or on two values at once, so a schema-valid request may still get a 422 that names
# the field. positive_data_acceptance keeps its other expectations for them.

[[operations]]  # seq must continue the run's stored seq (a gap means the client lost records)
include-name = "POST /api/v1/runs/{project}/{run_id}/records"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # a silence must end in the future; its matchers must parse, not all match no labels at all
include-name = "POST /api/v1/silences"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # label values must name a project the key may use (prometheus.project_label), some label must be
# non-empty, endsAt not before startsAt, and the times inside 1970..9999 once converted to UTC
include-name = "POST /api/v2/alerts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # matchers must parse (regexes), not all match the empty label set; the silence must end in the
# future, and `id`, when given, name a silence (404 otherwise, as in Alertmanager)
include-name = "POST /api/v2/silences"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # each `filter` must parse as a matcher, `receiver` as a regular expression
include-name = "GET /api/v2/alerts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]
include-name = "GET /api/v2/alerts/groups"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]
include-name = "GET /api/v2/silences"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # the body must hash to the digest in the URL
include-name = "PUT /api/v1/projects/{project}/blobs/{sha256}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # `digest`, when given, must be the digest of `entries`; entry paths must differ
include-name = "POST /api/v1/projects/{project}/artifacts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # with an admin key, `run` needs `project` (run ids are unique within a project only)
include-name = "GET /api/v1/alerts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]  # `end` must not be less than `start`
include-name = "GET /api/v1/runs/{project}/{run_id}/series"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# The URL .../blobs/missing is also .../blobs/{sha256} (the digest "missing"), which serves PUT and HEAD:
# they answer there (a 422 naming the digest) and `Allow` lists them, which this path alone does not
# document. The two templates overlap; both checks hold for every other path.
[[operations]]
include-name = "POST /api/v1/projects/{project}/blobs/missing"
checks.unsupported_method.enabled = false
checks.allow_header_conformance.enabled = false

[[operations]]  # its 404 may be about the artifact the body names, not the run the link gave the path
include-name = "POST /api/v1/runs/{project}/{run_id}/artifacts/used"
checks.ensure_resource_availability.enabled = false
""")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("api-schema")) as started:
        yield started


@pytest.fixture(scope="module")
def config_text(service: ServiceProcess) -> str:
    return CONFIG.substitute(key=service.admin_key)


@pytest.fixture(scope="module")
def api_schema(service: ServiceProcess, config_text: str) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(tomllib.loads(config_text))
    return schemathesis.openapi.from_url(f"{service.base_url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def api_schema_for_a_project_key(service: ServiceProcess) -> schemathesis.BaseSchema:
    """The same with a project key: most requests name other projects (403), and those it may use answer
    as for an admin. A shorter pass: the 403s and the admin-only routes are what it adds."""
    settings = tomllib.loads(CONFIG.substitute(key=service.create_key("vision")))
    settings["generation"]["max-examples"] = 5
    settings["phases"]["coverage"] = {"enabled": False}
    config = schemathesis.Config.from_dict(settings)
    return schemathesis.openapi.from_url(f"{service.base_url}/openapi.json", config=config)


admin_key_schema = schemathesis.pytest.from_fixture("api_schema")
project_key_schema = schemathesis.pytest.from_fixture("api_schema_for_a_project_key")


def test_every_reference_in_the_schema_resolves(service: ServiceProcess) -> None:
    """A ``$ref`` nothing defines leaves that part untested (schemathesis only warns): the records body
    once referred to ``#/components/schemas/HistoryRecord`` without defining it."""
    document = httpx.get(f"{service.base_url}/openapi.json", timeout=30).json()

    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = set(refs(document))
    assert "#/components/schemas/HistoryRecord" in found
    defined = {f"#/components/schemas/{name}" for name in document["components"]["schemas"]}
    assert found - defined == set()


@admin_key_schema.parametrize()
def test_every_operation_keeps_the_contract(case: Case) -> None:
    case.call_and_validate(timeout=30)


@project_key_schema.parametrize()
def test_a_project_key_gets_documented_answers_too(case: Case) -> None:
    case.call_and_validate(timeout=30)


def test_workflows_along_the_links_keep_the_contract(service: ServiceProcess, config_text: str,
                                                     tmp_path: Path) -> None:
    """The stateful phase by schemathesis' engine: Hypothesis' own state machines replay scenarios while
    shrinking, and a real server answers a replay differently (the run exists by then)."""
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config_text)
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "--no-color", "run",
         f"{service.base_url}/openapi.json", "--phases", "stateful"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]


def test_the_service_logged_no_traceback(service: ServiceProcess) -> None:
    """Last in the module: whatever was sent, nothing failed inside the service (an answer may be a
    4xx and still hide an exception that was caught and logged)."""
    assert "Traceback" not in service.log_text()
