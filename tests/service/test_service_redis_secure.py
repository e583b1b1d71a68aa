"""A Redis with a password and TLS (`rediss://`): the service's sessions go through it with
the credentials in the URL, and a wrong password stops the start-up without printing it."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis
import requests

from service.launch import ServiceProcess, ServiceStartError, free_port
from svc_fixtures import make_world

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("redis-server") or not shutil.which("openssl"),
                                 reason="needs redis-server and openssl (make redis)")]
PASSWORD = "s3cret-for-test"


@pytest.fixture
def tls_redis(tmp_path):
    """redis-server on TLS only (no plain port), a password required; yields (port, CA file)."""
    cert, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                             "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}&ssl_cert_reqs=required"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    yield port, cert
    proc.terminate()
    proc.wait()


def test_sessions_through_rediss_with_password(tmp_path, tls_redis):
    port, cert = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}&ssl_cert_reqs=required"
    config = make_world(tmp_path)
    with ServiceProcess(str(config), env={"BOTIFY_REDIS_URL": url}) as svc:
        for track, t in ((3, 1.0), (4, 0.5)):
            assert requests.post(f"{svc.url}/next/11", json={"track": track, "time": t}).status_code == 200
    stored = redis.Redis.from_url(url).get("botify:u:11")
    assert stored is not None and b'"s":[[3,1.0],[4,0.5]]' in stored
    with pytest.raises(redis.exceptions.ConnectionError):   # the server speaks TLS only
        redis.Redis(port=port, socket_timeout=2).ping()


def test_wrong_password_stops_start_up_without_printing_it(tmp_path, tls_redis):
    port, cert = tls_redis
    wrong = "not-the-password-42"
    with pytest.raises(ServiceStartError) as e:
        ServiceProcess(str(make_world(tmp_path)), start_timeout=60,
                       env={"BOTIFY_REDIS_URL": f"rediss://:{wrong}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"}).start()
    assert wrong not in str(e.value)
    assert "auth" in str(e.value).lower() or "password" in str(e.value).lower()
