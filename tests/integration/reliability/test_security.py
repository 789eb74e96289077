"""Who may write and read: ingest tokens over TLS for agents, read-only tokens for the HTTP API.

One `flamehouse server` with ``--tls-cert/--tls-key``, ``--token-file`` (ingest) and
``--api-token-file`` (read) serves every test here; certificates are made by openssl.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from flamehouse.agent.batch import AgentIdentity
from tests.integration.reliability.conftest import Certs, ServerProcess, agent_batch, known_split, push_stub, run_args

pytestmark = pytest.mark.integration

INGEST = "ingest-7f3a9c1e5b"
OTHER_INGEST = "ingest-second-22d0"
READ = "read-only-4be81f0a"
WRONG = "guessed-token-0000"
AGENT = AgentIdentity(agent_id="sec", host="host-s")


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[ServerProcess]:
    d = tmp_path_factory.mktemp("secure")
    (d / "ingest.tokens").write_text(f"# agent tokens\n{INGEST}\n{OTHER_INGEST}\n")
    (d / "read.tokens").write_text(f"{READ}\n")
    srv = ServerProcess(
        d / "data",
        "--token-file", str(d / "ingest.tokens"), "--api-token-file", str(d / "read.tokens"),
        "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
    )  # fmt: skip
    srv.start()
    yield srv
    assert srv.stop() == 0
    log = srv.log.read_text()
    for secret in (INGEST, OTHER_INGEST, READ, WRONG):
        assert secret not in log  # tokens never reach the log


def credentials(ca: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())


def call(push: object, token: str | None) -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    try:
        push(agent_batch(AGENT, pid=77, service="sec-stub"), metadata=metadata, timeout=20)  # type: ignore[operator]
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_tls_with_the_right_ca_works_and_with_another_fails(secure_server: ServerProcess, certs: Certs) -> None:
    good, push = push_stub(secure_server.grpc, credentials(certs.ca))
    assert call(push, OTHER_INGEST) == grpc.StatusCode.OK
    good.close()

    for channel, push in (
        push_stub(secure_server.grpc, credentials(certs.other_ca)),  # unknown issuer
        push_stub(secure_server.grpc),  # plain text to a TLS port
    ):
        assert call(push, INGEST) == grpc.StatusCode.UNAVAILABLE
        channel.close()
    assert secure_server.stored("sec-stub", token=READ) == sum(agent_batch(AGENT, pid=77).samples.count)


@pytest.mark.parametrize("token", [None, WRONG, READ], ids=["missing", "wrong", "read-token"])
def test_wrong_or_missing_ingest_token_is_unauthenticated(
    secure_server: ServerProcess, certs: Certs, token: str | None
) -> None:
    channel, push = push_stub(secure_server.grpc, credentials(certs.ca))
    assert call(push, token) == grpc.StatusCode.UNAUTHENTICATED
    channel.close()


def test_real_agents_right_ca_and_token_file_stored_wrong_ones_store_nothing(
    secure_server: ServerProcess, certs: Certs, tmp_path: Path
) -> None:
    token_file = tmp_path / "agent.token"
    token_file.write_text(f"{INGEST}\n")
    ok_stats, bad_token_stats, bad_ca_stats = (tmp_path / f"{n}.json" for n in ("ok", "token", "ca"))
    env_wrong = {**os.environ, "FLAMEHOUSE_TOKEN": WRONG}
    agents = [
        subprocess.Popen(
            run_args(secure_server.grpc, "sec-ok", ok_stats, tmp_path / "s1", "--tls-ca", str(certs.ca),
                     "--token-file", str(token_file), *known_split(3)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ),
        subprocess.Popen(
            run_args(secure_server.grpc, "sec-bad-token", bad_token_stats, tmp_path / "s2",
                     "--tls-ca", str(certs.ca), *known_split(3)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env_wrong,
        ),
        subprocess.Popen(
            run_args(secure_server.grpc, "sec-bad-ca", bad_ca_stats, tmp_path / "s3", "--tls-ca",
                     str(certs.other_ca), "--token-file", str(token_file), *known_split(3)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ),
    ]  # fmt: skip
    errors = []
    for agent in agents:
        _, err = agent.communicate(timeout=90)
        assert agent.returncode == 0, err[-2000:]
        errors.append(err)
    ok, bad_token, bad_ca = (json.loads(p.read_text()) for p in (ok_stats, bad_token_stats, bad_ca_stats))

    assert ok["samples_taken"] > 100 and ok["samples_acked"] == ok["samples_taken"]
    assert secure_server.stored("sec-ok", token=READ) == ok["samples_taken"]

    assert bad_token["samples_taken"] > 100 and bad_token["samples_dropped"] == bad_token["samples_taken"]
    assert "UNAUTHENTICATED" in errors[1]
    assert secure_server.stored("sec-bad-token", token=READ) == 0

    assert bad_ca["samples_taken"] > 100 and bad_ca["samples_acked"] == 0
    assert bad_ca["samples_left_in_spool"] == bad_ca["samples_taken"]  # kept for a fixed configuration
    assert secure_server.stored("sec-bad-ca", token=READ) == 0
    for err in errors:
        assert INGEST not in err and WRONG not in err


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("/api/v1/top", "", 401),
        ("/api/v1/top", INGEST, 401),  # an ingest token is not a read token
        ("/api/v1/top", WRONG, 401),
        ("/api/v1/labels", "", 401),
        ("/api/v1/top", READ, 200),
        ("/api/v1/labels", READ, 200),
        ("/healthz", "", 200),
    ],
)
def test_http_api_needs_a_read_token(secure_server: ServerProcess, path: str, token: str, status: int) -> None:
    got, body = secure_server.get(path, token=token)
    assert got == status, body
    if status == 401:
        assert "Bearer" in body["error"]
        assert not token or token not in json.dumps(body)
