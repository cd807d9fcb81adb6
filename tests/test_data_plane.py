"""Aruna's data plane: endpoints, a service account's trusted endpoints, S3 credentials per
(account, endpoint), and the gateway's check of requests signed by botocore's SigV4 signer
(the signer of the AWS SDK for Python); through HTTP and the command line, on SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import botocore.config
import botocore.exceptions
import botocore.session
import pytest
import sqlalchemy as sa
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from freezegun import freeze_time

from api_helpers import OPERATOR, SA, Api, make_api, seed
from helpers import (
    assert_one_line_error,
    assert_projections_match_log,
    cli_json,
    cli_run,
    head_position,
)
from tokenledger.domain import commands as c
from tokenledger.domain.permissions import Level
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

GATEWAY = "proxy.test:9000"


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    for made in make_api(database_url, tmp_path):
        made.ledger.execute(c.CreateEndpoint(name="proxy", url=f"http://{GATEWAY}"), OPERATOR)
        made.ledger.execute(c.CreateEndpoint(name="other", url="https://other.test"), OPERATOR)
        yield made


def trust(api: Api, endpoint: str = "proxy") -> None:
    response = api.client.post(
        f"/v2/service_accounts/{SA}/trusted_endpoints",
        json={"endpointId": endpoint},
        headers=api.admin,
    )
    assert response.status_code == 201, response.text


def credentials(api: Api, endpoint: str = "proxy") -> dict[str, Any]:
    """Aruna's GetS3CredentialsSvcAccount."""
    response = api.client.get(
        f"/v2/user/s3_credentials/{SA}/s3_credentials/{endpoint}", headers=api.admin
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def signed(
    method: str,
    path: str,
    body: bytes,
    key: str,
    secret: str,
    *,
    query: str = "",
    sent_body: bytes | None = None,
    endpoint: str = "proxy",
) -> dict[str, Any]:
    """A request signed by botocore as an S3 client signs it, as the gateway would pass it
    to the ledger (``sent_body``: what the gateway actually received)."""
    url = f"http://{GATEWAY}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(key, secret), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = GATEWAY
    parts = urlsplit(request.url)
    received = body if sent_body is None else sent_body
    return {
        "endpoint": endpoint,
        "method": method,
        "path": parts.path,
        "query": parts.query,
        "headers": headers,
        "payload_sha256": hashlib.sha256(received).hexdigest(),
    }


def check(api: Api, request: dict[str, Any]) -> Any:
    return api.client.post("/v2/s3/check", json=request)


def test_credentials_sign_requests_the_gateway_can_check(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    assert key.startswith("TLS3")
    assert len(key) == 20
    assert len(secret) == 40
    assert issued["s3EndpointUrl"] == f"http://{GATEWAY}"
    assert issued["secret_access_key"] == secret

    put = check(api, signed("PUT", "/alpha/raw/file%20one.csv", b"a,b\n1,2\n", key, secret))
    assert put.status_code == 200, put.text
    assert put.json() == {
        "valid": True,
        "access_key_id": key,
        "account_id": SA,
        "endpoint_id": issued["endpoint_id"],
        "operation": "PUT",
        "resource": "acme/alpha/raw/file one.csv",
        "needed": "append",
        "level": "write",
        "copy_source": None,
        "copy_source_level": None,
        "allowed": True,
    }
    listing = check(api, signed("GET", "/alpha", b"", key, secret, query="list-type=2&prefix=r"))
    assert listing.json()["allowed"] is True
    assert listing.json()["needed"] == "read"
    deleting = check(api, signed("DELETE", "/alpha/raw/x", b"", key, secret))
    assert deleting.json()["allowed"] is True
    # The account's permission lies on acme/alpha: another project's bucket is not its own.
    elsewhere = check(api, signed("GET", "/beta/x", b"", key, secret))
    assert elsewhere.status_code == 200
    assert elsewhere.json()["allowed"] is False
    assert elsewhere.json()["level"] == "none"


def test_the_level_follows_the_accounts_permission(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    api.ledger.execute(
        c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.READ),
        OPERATOR,
    )
    assert check(api, signed("GET", "/alpha/x", b"", key, secret)).json()["allowed"] is True
    put = check(api, signed("PUT", "/alpha/x", b"data", key, secret)).json()
    assert put["allowed"] is False
    assert (put["needed"], put["level"]) == ("append", "read")


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        (lambda r: r.update(payload_sha256=hashlib.sha256(b"other").hexdigest()), 403, None),
        (lambda r: r.update(path="/alpha/elsewhere"), 403, "SignatureDoesNotMatch"),
        (lambda r: r.update(method="DELETE"), 403, "SignatureDoesNotMatch"),
        (lambda r: r.update(endpoint="other"), 403, "InvalidAccessKeyId"),
        (lambda r: r.update(endpoint="nowhere"), 404, "not_found"),
        (lambda r: r["headers"].update(Authorization="AWS4-HMAC-SHA256 nonsense"), 400, None),
        (lambda r: r["headers"].update(Authorization="Bearer abc"), 400, None),
        (lambda r: r["headers"].pop("Authorization"), 400, None),
        (lambda r: r["headers"].update({"X-Amz-Date": "yesterday"}), 400, None),
        (lambda r: r.update(method="PATCH"), 400, None),
    ],
)
def test_a_request_that_does_not_hold_is_refused(
    api: Api, tamper: Any, status: int, code: str | None
) -> None:
    trust(api)
    trust(api, "other")
    issued = credentials(api)
    request = signed("PUT", "/alpha/raw/f", b"body", issued["s3AccessKey"], issued["s3SecretKey"])
    tamper(request)
    response = check(api, request)
    assert response.status_code == status, response.text
    error = response.json()
    assert "\n" not in error["error_description"]
    if code is not None:
        assert error["error"] == code


def test_only_requests_to_the_endpoints_own_host_are_judged(api: Api) -> None:
    """A virtual-hosted request (``alpha.host/raw/x``) names its bucket in the host: read
    path-style, it would be judged on another path than the one it writes."""
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    url = f"http://alpha.{GATEWAY}/raw/x"
    request = AWSRequest(method="PUT", url=url, data=b"x")
    S3SigV4Auth(Credentials(key, secret), "s3", "us-east-1").add_auth(request)
    headers = {**dict(request.headers.items()), "Host": f"alpha.{GATEWAY}"}
    body = {"endpoint": "proxy", "method": "PUT", "path": "/raw/x", "query": "", "headers": headers}
    response = check(api, {**body, "payload_sha256": hashlib.sha256(b"x").hexdigest()})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "AccessDenied"
    assert "path-style" in response.json()["error_description"]


def test_a_revoked_key_is_told_only_to_whoever_holds_its_secret(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    api.client.patch(f"/v2/user/s3_credentials/{SA}/s3_credentials/proxy/revoke", headers=api.admin)
    forged = check(api, signed("GET", "/alpha/f", b"", key, "y" * 40)).json()
    assert (forged["error"], "revoked" in forged["error_description"]) == (
        "SignatureDoesNotMatch",
        False,
    )
    held = check(api, signed("GET", "/alpha/f", b"", key, secret)).json()
    assert (held["error"], "revoked" in held["error_description"]) == ("InvalidAccessKeyId", True)


def test_a_path_with_dot_segments_names_no_object(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    for path in (
        "/alpha/../beta/x",
        "/alpha/..%2Fbeta%2Fx",
        "/alpha%2F..%2Fbeta/x",
        "/alpha/..%5Cx",
    ):
        response = check(api, signed("GET", path, b"", key, secret))
        assert response.status_code == 400, (path, response.text)
        assert "name no object" in response.json()["error_description"]


def test_what_a_request_does_decides_the_level_it_needs(api: Api) -> None:
    """Not the method alone: a bulk delete (POST ?delete) needs write, a configuration change
    (?acl, ?policy) admin, a copy read on its source; multipart steps are uploads."""
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    api.ledger.execute(
        c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.APPEND),
        OPERATOR,
    )

    def verdict(method: str, path: str, query: str = "", **headers: str) -> dict[str, Any]:
        url = f"http://{GATEWAY}{path}" + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=url, data=b"", headers=headers)
        S3SigV4Auth(Credentials(key, secret), "s3", "us-east-1").add_auth(request)
        sent = {**dict(request.headers.items()), "Host": GATEWAY}
        body = {"endpoint": "proxy", "method": method, "path": path, "query": query}
        body |= {"headers": sent, "payload_sha256": hashlib.sha256(b"").hexdigest()}
        response = check(api, body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert verdict("PUT", "/alpha/new")["allowed"] is True
    assert verdict("POST", "/alpha/big", "uploads=")["allowed"] is True
    assert verdict("PUT", "/alpha/big", "partNumber=1&uploadId=u1")["allowed"] is True
    assert verdict("DELETE", "/alpha/big", "uploadId=u1")["allowed"] is True
    assert (verdict("DELETE", "/alpha/x")["needed"], verdict("DELETE", "/alpha/x")["allowed"]) == (
        "write",
        False,
    )
    bulk = verdict("POST", "/alpha", "delete=")
    assert (bulk["needed"], bulk["allowed"]) == ("write", False)
    acl = verdict("PUT", "/alpha", "acl=")
    assert (acl["needed"], acl["allowed"]) == ("admin", False)
    copied = verdict("PUT", "/alpha/stolen", **{"x-amz-copy-source": "beta/secret.csv"})
    assert copied["copy_source"] == "acme/beta/secret.csv"
    assert (copied["copy_source_level"], copied["allowed"]) == ("none", False)
    own = verdict("PUT", "/alpha/copy", **{"x-amz-copy-source": "/alpha/raw/a.csv?versionId=3"})
    assert (own["copy_source"], own["allowed"]) == ("acme/alpha/raw/a.csv", True)


def test_text_no_wire_carries_is_refused_in_one_line(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    request = signed("GET", "/alpha/f", b"", issued["s3AccessKey"], issued["s3SecretKey"])
    for tamper in (
        lambda r: r["headers"].update(
            Authorization=r["headers"]["Authorization"].replace("TLS3", "TLS3\ud800", 1)
        ),
        lambda r: r["headers"].update(Host="proxy\ud800.test"),
    ):
        body = json.loads(json.dumps(request))
        tamper(body)
        raw = json.dumps(body).replace("\\\\ud800", "\\ud800")
        response = api.client.post(
            "/v2/s3/check", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error_description"] == (
            "the request's method, path, query and headers must be UTF-8 text"
        )


def test_a_signature_over_another_body_is_refused(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    request = signed("PUT", "/alpha/f", b"what was signed", key, secret, sent_body=b"what came")
    response = check(api, request)
    assert response.status_code == 403
    assert response.json()["error"] == "XAmzContentSHA256Mismatch"
    # Another secret key signs another signature.
    forged = check(api, signed("GET", "/alpha/f", b"", key, "x" * 40))
    assert forged.status_code == 403
    assert forged.json()["error"] == "SignatureDoesNotMatch"


def test_a_request_signed_too_long_ago_is_refused(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    key, secret = issued["s3AccessKey"], issued["s3SecretKey"]
    now = datetime.now(UTC)
    with freeze_time(now - timedelta(minutes=16)):
        stale = signed("GET", "/alpha/f", b"", key, secret)
    with freeze_time(now - timedelta(minutes=14)):
        recent = signed("GET", "/alpha/f", b"", key, secret)
    with freeze_time(now):
        refused = check(api, stale)
        accepted = check(api, recent)
    assert refused.status_code == 403
    assert refused.json()["error"] == "RequestTimeTooSkewed"
    assert accepted.status_code == 200


def test_secret_shown_once_and_kept_nowhere(api: Api, database_url: str) -> None:
    trust(api)
    issued = credentials(api)
    secret = issued["s3SecretKey"]
    again = api.client.get(f"/v2/user/s3_credentials/{SA}/s3_credentials/proxy", headers=api.admin)
    assert again.status_code == 409
    assert issued["s3AccessKey"] in again.json()["error_description"]
    assert secret not in again.text
    listed = api.client.get(f"/v2/service_accounts/{SA}/s3_credentials", headers=api.admin)
    assert listed.status_code == 200
    assert [row["access_key_id"] for row in listed.json()] == [issued["s3AccessKey"]]
    assert secret not in listed.text
    engine = api.ledger.store.engine
    with engine.connect() as connection:
        for table in sa.inspect(engine).get_table_names():
            for row in connection.execute(sa.text(f"SELECT * FROM {table}")):
                assert secret not in repr(row), table
    assert secret not in (Path(str(api.keys.path))).read_text()


def test_who_may_trust_endpoints_and_hold_credentials(api: Api) -> None:
    before = head_position(api.ledger)
    path = f"/v2/service_accounts/{SA}/trusted_endpoints"
    bob = api.client.post(path, json={"endpoint": "proxy"}, headers=api.bearer(api.bob))
    assert bob.status_code == 403  # write on the project, not admin
    carol = api.client.post(path, json={"endpoint": "proxy"}, headers=api.bearer(api.carol))
    assert carol.status_code in (403, 404)
    itself = api.client.post(path, json={"endpoint": "proxy"}, headers=api.bearer(api.sa_token))
    assert itself.status_code == 403
    assert "service account may not" in itself.json()["error_description"]
    unknown = api.client.post(path, json={"endpoint": "nowhere"}, headers=api.admin)
    assert unknown.status_code == 404
    both = api.client.post(path, json={"endpoint": "a", "endpointId": "b"}, headers=api.admin)
    assert both.status_code == 400
    untrusted = api.client.get(
        f"/v2/user/s3_credentials/{SA}/s3_credentials/proxy", headers=api.admin
    )
    assert untrusted.status_code == 409
    assert "does not trust endpoint proxy" in untrusted.json()["error_description"]
    assert head_position(api.ledger) == before


def test_the_default_endpoint_is_the_only_trusted_one(api: Api) -> None:
    path = f"/v2/user/s3_credentials/{SA}/s3_credentials"
    none = api.client.get(path, headers=api.admin)
    assert none.status_code == 400
    assert "trusts 0 endpoints" in none.json()["error_description"]
    trust(api)
    only = api.client.get(path, headers=api.admin)
    assert only.status_code == 200, only.text
    assert only.json()["s3EndpointUrl"] == f"http://{GATEWAY}"


def explain(api: Api, key: str) -> dict[str, Any]:
    response = api.client.get(f"/v2/tokens/{key}/explain", headers=api.admin)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def revoked(api: Api, issued: dict[str, Any]) -> None:
    request = signed("GET", "/alpha/f", b"", issued["s3AccessKey"], issued["s3SecretKey"])
    response = check(api, request)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "InvalidAccessKeyId"


def test_revoked_one_by_one_and_by_arunas_path(api: Api) -> None:
    trust(api)
    issued = credentials(api)
    response = api.client.patch(
        f"/v2/user/s3_credentials/{SA}/s3_credentials/proxy/revoke", headers=api.admin
    )
    assert response.status_code == 200, response.text
    revoked(api, issued)
    again = credentials(api)
    assert again["s3AccessKey"] != issued["s3AccessKey"]
    by_id = api.client.delete(
        f"/v2/service_accounts/{SA}/s3_credentials/{again['s3AccessKey']}", headers=api.admin
    )
    assert by_id.status_code == 200
    revoked(api, again)
    story = explain(api, again["s3AccessKey"])
    assert story["status"] == "revoked"
    assert story["revocation"]["event_type"] == "S3CredentialRevoked"
    assert_projections_match_log(api.ledger)


@pytest.mark.parametrize("cause", ["moved", "deleted", "untrusted", "endpoint deleted"])
def test_every_cascade_revokes_them_with_a_linked_event(api: Api, cause: str) -> None:
    trust(api)
    issued = credentials(api)
    if cause == "moved":
        command: c.Command = c.SetServiceAccountPermission(
            account_id=SA, resource="acme/beta", level=Level.WRITE
        )
        root = "ServiceAccountPermissionMoved"
    elif cause == "deleted":
        command = c.DeleteServiceAccount(account_id=SA)
        root = "ServiceAccountDeleted"
    elif cause == "untrusted":
        command = c.UntrustEndpoint(account_id=SA, endpoint="proxy")
        root = "EndpointUntrusted"
    else:
        command = c.DeleteEndpoint(endpoint="proxy")
        root = "EndpointDeleted"
    result = api.ledger.execute(command, OPERATOR)
    types = [type(e).__name__ for e in result.events]
    assert types[0] == root
    assert types.count("S3CredentialRevoked") == 1
    if cause == "endpoint deleted":  # the gateway itself is unknown now
        request = signed("GET", "/alpha/f", b"", issued["s3AccessKey"], issued["s3SecretKey"])
        assert check(api, request).status_code == 404
    else:
        revoked(api, issued)
    story = explain(api, issued["s3AccessKey"])
    assert story["root_cause"]["event_type"] == root
    assert story["revocation"]["correlation_id"] == result.correlation_id
    if cause in ("deleted", "untrusted", "endpoint deleted"):
        listed = api.client.get(f"/v2/service_accounts/{SA}/trusted_endpoints", headers=api.admin)
        assert cause == "deleted" or listed.json() == []
    assert_projections_match_log(api.ledger)


# -- the command line ---------------------------------------------------------------------------


def test_the_command_line(database_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("TOKENLEDGER_KEYS_FILE", str(tmp_path / "cli-keys.json"))
    seeding = Ledger(open_event_store(database_url, auto_upgrade=True))
    seed(seeding)
    seeding.close()
    url = database_url
    created = cli_json(url, "endpoints", "create", "proxy", "--url", f"http://{GATEWAY}")
    assert created["id"].startswith("ep_")
    assert [e["name"] for e in cli_json(url, "endpoints", "list")] == ["proxy"]
    assert cli_json(url, "endpoints", "get", created["id"])["url"] == f"http://{GATEWAY}"
    cli_json(url, "service-accounts", "trust-endpoint", SA, "proxy")
    trusted = cli_json(url, "service-accounts", "trusted-endpoints", SA)
    assert [e["id"] for e in trusted] == [created["id"]]
    result = cli_run(url, "s3-credentials", "create", SA, "proxy")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    key, secret = lines["access key id"].strip(), lines["secret access key"].strip()
    assert "shown this once" in result.stderr
    listed = cli_json(url, "s3-credentials", "list", SA)
    assert [row["access_key_id"] for row in listed] == [key]
    assert secret not in str(listed)

    before = cli_json(url, "log", "head")["position"]
    assert_one_line_error(
        cli_run(url, "endpoints", "create", "bad", "--url", "ftp://x"), 2, "invalid endpoint url"
    )
    assert_one_line_error(
        cli_run(url, "endpoints", "create", "proxy", "--url", "http://x.test"), 5, "exists"
    )
    assert_one_line_error(cli_run(url, "s3-credentials", "create", SA, "proxy"), 5, key)
    assert_one_line_error(cli_run(url, "s3-credentials", "create", SA, "nowhere"), 3, "nowhere")
    assert_one_line_error(cli_run(url, "s3-credentials", "revoke", SA), 2, "name the endpoint")
    assert_one_line_error(
        cli_run(url, "s3-credentials", "revoke", SA, "--access-key-id", "AKIA"), 2, "TLS3"
    )
    sa_token = cli_json(
        url, "tokens", "create", "--principal", SA, "--resource", "acme/alpha", "--level", "read"
    )
    refused = cli_run(
        url, "service-accounts", "trust-endpoint", SA, "proxy", token=sa_token["secret"]
    )
    assert_one_line_error(refused, 4, "a service account may not manage trusted endpoints")
    assert cli_json(url, "log", "head")["position"] == before + 1  # the token only

    explained = cli_json(url, "audit", "explain", key)
    assert explained["access_key_id"] == key
    deleted = cli_json(url, "endpoints", "delete", "proxy")
    assert deleted["revoked_s3_credentials"] == [key]
    assert deleted["untrusted_by"] == [SA]
    story = cli_run(url, "audit", "explain", key)
    assert "root cause" in story.stdout
    assert "endpoint proxy" in story.stdout


# -- a standard S3 client, through a gateway that asks the ledger ---------------------------------


class _Gateway(http.server.BaseHTTPRequestHandler):
    """An S3-compatible gateway reduced to its authorisation: each request is checked with
    the ledger (``POST /v2/s3/check``) and answered as S3 would."""

    api: Api
    lock: ClassVar[threading.Lock] = threading.Lock()
    stored: ClassVar[dict[str, bytes]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        request = {
            "endpoint": "gateway",
            "method": self.command,
            "path": path,
            "query": query,
            "headers": dict(self.headers.items()),
            "payload_sha256": hashlib.sha256(body).hexdigest(),
        }
        with self.lock:
            answer = self.api.client.post("/v2/s3/check", json=request)
        verdict = answer.json()
        if answer.status_code != 200 or not verdict["allowed"]:
            code = (
                verdict.get("error", "AccessDenied")
                if answer.status_code != 200
                else "AccessDenied"
            )
            self._reply(403, f"<Error><Code>{code}</Code><Message>no</Message></Error>".encode())
            return
        if self.command == "PUT":
            self.stored[path] = body
            self._reply(200, b"")
        elif self.command in ("GET", "HEAD"):
            self._reply(200, self.stored.get(path, b""))
        else:
            self.stored.pop(path, None)
            self._reply(204, b"")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = _handle


@pytest.fixture
def gateway(api: Api) -> Iterator[str]:
    handler = type("Gateway", (_Gateway,), {"api": api, "stored": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    api.ledger.execute(c.CreateEndpoint(name="gateway", url=url), OPERATOR)
    yield url
    server.shutdown()
    server.server_close()


def test_a_standard_s3_client_through_a_gateway(api: Api, gateway: str) -> None:
    trust(api, "gateway")
    issued = credentials(api, "gateway")
    s3 = botocore.session.get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=gateway,
        aws_access_key_id=issued["s3AccessKey"],
        aws_secret_access_key=issued["s3SecretKey"],
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    s3.put_object(Bucket="alpha", Key="raw/readings.csv", Body=b"t,v\n1,2\n")
    assert s3.get_object(Bucket="alpha", Key="raw/readings.csv")["Body"].read() == b"t,v\n1,2\n"
    s3.head_object(Bucket="alpha", Key="raw/readings.csv")
    s3.delete_object(Bucket="alpha", Key="raw/readings.csv")
    with pytest.raises(botocore.exceptions.ClientError) as elsewhere:
        s3.put_object(Bucket="beta", Key="x", Body=b"no")
    assert elsewhere.value.response["Error"]["Code"] == "AccessDenied"
    api.client.patch(
        f"/v2/user/s3_credentials/{SA}/s3_credentials/gateway/revoke", headers=api.admin
    )
    with pytest.raises(botocore.exceptions.ClientError) as revoked_now:
        s3.put_object(Bucket="alpha", Key="raw/again.csv", Body=b"no")
    assert revoked_now.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_processes_making_the_first_s3_key_at_once_agree_on_one(tmp_path: Path) -> None:
    """Each store reads, adds the key and writes under one lock: no writer keeps a key that
    another's write then drops (every credential's secret depends on it)."""
    path = tmp_path / "keys.json"
    start = threading.Barrier(8)
    made: list[bytes] = []

    def first_key() -> None:
        store = KeyStore(path)
        start.wait(timeout=10)
        made.append(store.s3_key())

    threads = [threading.Thread(target=first_key) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(made) == 8
    assert len(set(made)) == 1
    assert KeyStore(path).ring().s3_key == made[0]
