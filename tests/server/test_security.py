"""Transport security and access control: TLS, client certificates, a bearer token, and a
loopback default (#18)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from scorer.server import serve
from scorer.server.app import ServerHandle
from tests.server.conftest import infer_matrix, publish

TOKEN = "s3cret-token-for-tests"


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for 127.0.0.1 / localhost: (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("certs")
    return {"server": _self_signed(d, "server"), "client": _self_signed(d, "client"),
            "other": _self_signed(d, "other")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, bundles) -> Path:
    r = tmp_path_factory.mktemp("secrepo")
    publish(bundles["iris"].path, r, "iris", 1)
    return r


def _refused(call) -> str:
    with pytest.raises(InferenceServerException) as err:
        call()
    return err.value.status()


def test_tls(repo: Path, certs) -> None:
    cert, key = certs["server"]
    with serve(repo, port=0, poll_interval=0, tls_cert=cert, tls_key=key,
               ready_timeout=60) as handle:
        secure = tc.InferenceServerClient(handle.address, ssl=True,
                                          root_certificates=str(cert))
        assert secure.is_server_live()
        assert infer_matrix(secure, "iris", np.zeros((1, 4))).get_response().model_version \
            == "1"
        secure.close()
        plain = tc.InferenceServerClient(handle.address)
        assert _refused(lambda: plain.is_server_live(client_timeout=2)) in (
            "StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
        plain.close()
        # a client that does not trust the server's certificate fails too
        wrong = tc.InferenceServerClient(handle.address, ssl=True,
                                         root_certificates=str(certs["other"][0]))
        assert _refused(lambda: wrong.is_server_live(client_timeout=2)) in (
            "StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
        wrong.close()


def test_client_certificates(repo: Path, certs) -> None:
    cert, key = certs["server"]
    client_cert, client_key = certs["client"]
    with serve(repo, port=0, poll_interval=0, tls_cert=cert, tls_key=key,
               tls_client_ca=client_cert, ready_timeout=60) as handle:
        good = tc.InferenceServerClient(handle.address, ssl=True, root_certificates=str(cert),
                                        private_key=str(client_key),
                                        certificate_chain=str(client_cert))
        assert infer_matrix(good, "iris", np.zeros((1, 4))).get_response().model_version == "1"
        good.close()
        other_cert, other_key = certs["other"]  # a certificate the CA did not sign
        for kwargs in ({}, {"private_key": str(other_key),
                            "certificate_chain": str(other_cert)}):
            c = tc.InferenceServerClient(handle.address, ssl=True,
                                         root_certificates=str(cert), **kwargs)
            assert _refused(lambda c=c: c.is_server_live(client_timeout=2)) in (
                "StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
            c.close()


@pytest.fixture(scope="module")
def token_server(repo: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerHandle]:
    f = tmp_path_factory.mktemp("token") / "token"
    f.write_text(TOKEN + "\n")
    handle = serve(repo, port=0, poll_interval=0, auth_token_file=f, ready_timeout=60)
    yield handle
    handle.stop(0)


def test_token_required(token_server: ServerHandle) -> None:
    c = tc.InferenceServerClient(token_server.address)
    right = {"authorization": f"Bearer {TOKEN}"}
    for headers in (None, {"authorization": f"Bearer {TOKEN}x"},
                    {"authorization": TOKEN}, {"authorization": "Bearer "}):
        assert _refused(lambda h=headers: infer_matrix_h(c, h)) == \
            "StatusCode.UNAUTHENTICATED", headers
        assert _refused(lambda h=headers: c.get_model_repository_index(headers=h)) == \
            "StatusCode.UNAUTHENTICATED"
        assert _refused(lambda h=headers: c.load_model("iris", headers=h)) == \
            "StatusCode.UNAUTHENTICATED"
    assert infer_matrix_h(c, right).get_response().model_version == "1"
    assert c.get_model_repository_index(headers=right).models
    c.close()


def test_token_exempts_health_checks_only(token_server: ServerHandle) -> None:
    c = tc.InferenceServerClient(token_server.address)
    assert c.is_server_live() and c.is_server_ready()  # probes cannot send metadata
    assert _refused(lambda: c.is_model_ready("iris")) == "StatusCode.UNAUTHENTICATED"
    assert _refused(lambda: c.get_server_metadata()) == "StatusCode.UNAUTHENTICATED"
    c.close()
    with grpc.insecure_channel(token_server.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING


def infer_matrix_h(c: tc.InferenceServerClient, headers: dict[str, str] | None
                   ) -> tc.InferResult:
    inp = tc.InferInput("input", [1, 4], "FP64")
    inp.set_data_from_numpy(np.zeros((1, 4)))
    return c.infer("iris", [inp], headers=headers)


def test_cli_defaults_to_loopback_and_checks_tls_options(tmp_path: Path) -> None:
    import argparse

    from scorer.server.config import ServerConfig
    from scorer.server.main import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--repository", str(tmp_path)])
    assert args.host == "127.0.0.1"
    assert args.tls_cert is None and args.auth_token_file is None
    with pytest.raises(ValueError, match="go together"):
        ServerConfig(repository=tmp_path, tls_cert=tmp_path / "c.pem")
    with pytest.raises(ValueError, match="needs --tls-cert"):
        ServerConfig(repository=tmp_path, tls_client_ca=tmp_path / "ca.pem")


def test_empty_token_file_is_refused(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("  \n")
    with pytest.raises(ValueError, match="is empty"):
        serve(repo, port=0, poll_interval=0, auth_token_file=tmp_path / "token")


def test_tls_files_that_do_not_load_are_named(repo: Path, certs, tmp_path: Path) -> None:
    cert, key = certs["server"]
    other_cert, other_key = certs["other"]
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    (tmp_path / "empty.pem").write_text("")
    cases = [
        ({"tls_cert": tmp_path / "garbage.pem", "tls_key": key}, "not a certificate and"),
        ({"tls_cert": cert, "tls_key": other_key}, "not a certificate and"),  # no match
        ({"tls_cert": key, "tls_key": cert}, "not a certificate and"),        # swapped
        ({"tls_cert": cert, "tls_key": key, "tls_client_ca": tmp_path / "empty.pem"},
         "--tls-client-ca .*empty.pem: no PEM certificate"),
        ({"tls_cert": cert, "tls_key": key, "tls_client_ca": tmp_path / "garbage.pem"},
         "--tls-client-ca"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            serve(repo, port=0, poll_interval=0, **options)
    assert other_cert.exists()
