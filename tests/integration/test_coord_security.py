"""Key prefixes, ACL users and TLS: the documented ACL rule is enough for every primitive, a user
confined to another prefix gets a clear RedisUnavailable naming the redacted URL, and rediss://
URLs verify the server certificate against the CA file given in the query string."""

from __future__ import annotations

import pytest
import redis

from mlflowdsl.runtime.coordination import (
    BackoffPolicy,
    DistributedLock,
    InstanceInfo,
    InstanceRegistry,
    LeaderLease,
    RedisGateway,
    RedisUnavailable,
    ShardBalancer,
    coordination_status,
)

pytestmark = pytest.mark.integration

# The rule docs/operations.md gives, for prefix "team-a".
ACL_RULE = ["on", ">s3cret-pw", "~team-a:*", "+@read", "+@write", "+@scripting", "+@stream", "+@connection",
            "+time", "-@dangerous"]


@pytest.fixture
def acl_user(redis_url):
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "mlw-team-a", "reset", *ACL_RULE)
    yield redis_url.replace("redis://", "redis://mlw-team-a:s3cret-pw@")
    admin.execute_command("ACL", "DELUSER", "mlw-team-a")
    admin.close()


def test_documented_acl_rule_is_enough_for_every_primitive(acl_user):
    gw = RedisGateway(acl_user, prefix="team-a")
    registry = InstanceRegistry(gw)
    registry.register(InstanceInfo("orch-a", ("training",)))
    assert registry.heartbeat("orch-a", 0.1)
    lease = LeaderLease(gw, "orch-a")
    assert lease.try_acquire() == 1 and lease.renew()
    assert ShardBalancer(lease, registry).rebalance().owner_of("training") == "orch-a"
    with DistributedLock(gw, "claim"):
        pass
    status = coordination_status(gw)
    assert status["leader"] == {"id": "orch-a", "epoch": 1}
    assert status["redis"].startswith("redis://mlw-team-a:***@")
    lease.release()
    gw.close()


def test_user_confined_to_another_prefix_gets_a_clear_error(acl_user):
    gw = RedisGateway(acl_user, prefix="team-b")
    with pytest.raises(RedisUnavailable) as info:
        DistributedLock(gw, "claim").try_acquire()
    text = str(info.value)
    assert "mlw-team-a:***@" in text and "s3cret-pw" not in text
    assert "ACL" in text
    gw.close()


def test_wrong_password_is_not_retried_and_names_the_url(redis_url, acl_user):
    gw = RedisGateway(redis_url.replace("redis://", "redis://mlw-team-a:wrong@"), prefix="team-a")
    with pytest.raises(RedisUnavailable) as info:
        gw.ping()
    assert "credentials" in str(info.value) and "wrong" not in str(info.value)
    assert gw.breaker_state == "closed"
    gw.close()


# ----------------------------------------------------------------------------- TLS
# The bundled valkey is built without TLS, so a small TLS-terminating proxy in front of it gives
# the client a real TLS connection (certificate checked against a CA file given in the URL).

class TlsProxy:
    def __init__(self, backend_port: int, cert: str, key: str):
        import socket
        import ssl
        import threading

        self.backend_port = backend_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.closed.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                client = self.context.wrap_socket(raw, server_side=True)
            except OSError:
                raw.close()  # a client that rejected our certificate
                continue
            backend = socket.create_connection(("127.0.0.1", self.backend_port))
            for src, dst in ((client, backend), (backend, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture
def tls_proxy(redis_server, redis_url, tmp_path):
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    proxy = TlsProxy(redis_server.port, str(cert), str(key))
    yield proxy, str(cert)
    proxy.close()


def test_rediss_url_with_ca_file_in_the_query_string(tls_proxy):
    proxy, ca = tls_proxy
    gw = RedisGateway(f"rediss://127.0.0.1:{proxy.port}/0?ssl_ca_certs={ca}", prefix="tls")
    assert gw.ping()
    lease = LeaderLease(gw, "orch-a")
    assert lease.try_acquire() == 1
    with DistributedLock(gw, "claim"):
        pass
    lease.release()
    gw.close()


def test_rediss_without_the_ca_fails_clearly(tls_proxy):
    proxy, _ = tls_proxy
    gw = RedisGateway(f"rediss://127.0.0.1:{proxy.port}/0", prefix="tls", retry=BackoffPolicy(attempts=1))
    with pytest.raises(RedisUnavailable) as info:
        gw.ping()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate" in str(info.value).lower()
    gw.close()
