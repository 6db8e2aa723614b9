"""`agw run` with no config: the self-contained demo (proxy on :8080, dev IdP on :8081, httpbin-like backend),
started as a user would, and the curl commands it prints run as written (by bash and curl, when present; by
urllib otherwise): 401 without a token, a password-grant token from :8081, 200 with it, and no Authorization
header at the backend."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.support.ports import port_is_open
from tests.support.proxy import agw_env

pytestmark = pytest.mark.e2e

PROXY_PORT, IDP_PORT = 8080, 8081   # fixed by the demo, as in the guide


@pytest.fixture
def demo(agw_proxy):
    busy = [port for port in (PROXY_PORT, IDP_PORT) if port_is_open("127.0.0.1", port)]
    if busy:
        pytest.skip(f"the demo needs ports {PROXY_PORT} and {IDP_PORT}; busy here: {busy}")
    proxy = agw_proxy(None, ports_to_wait=[PROXY_PORT, IDP_PORT], wait_readyz=True)
    proxy.wait_for_output(r"Stop with Ctrl-C")
    return proxy


def printed_commands(output: str) -> list[str]:
    """The shell commands of the printed steps: comments dropped, `\\` continuations joined."""
    block = output[output.index("Verify JWT authentication:"):output.index("Stop with Ctrl-C")]
    commands, current = [], ""
    for raw in block.splitlines()[1:]:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        commands.append(current + line)
        current = ""
    return commands


def bash(script: str) -> str:
    done = subprocess.run(["bash", "-c", f"set -eo pipefail\n{script}"], capture_output=True, text=True,
                          timeout=30, env=agw_env())
    assert done.returncode == 0, (script, done.stdout, done.stderr)
    return done.stdout


def split_http(raw: str) -> tuple[int, dict[str, str], str]:
    """`curl -i` output: status, headers (lowercased names), body."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def test_demo_prints_the_guides_steps(demo):
    output = demo.output()
    commands = printed_commands(output)
    assert len(commands) == 3, commands
    assert commands[0].startswith(f"curl -i localhost:{PROXY_PORT}/headers")
    assert commands[1].startswith("export TOKEN=") and f"localhost:{IDP_PORT}/realms/master/" in commands[1]
    assert 'Authorization: Bearer $TOKEN' in commands[2]
    assert "DEVELOPMENT" in output.upper()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (the urllib variant runs)")
def test_the_printed_curl_steps_work_as_written(demo):
    without, obtain, with_token = printed_commands(demo.output())

    status, headers, body = split_http(bash(without))
    assert status == 401
    assert body == "authentication failure: no bearer token found"
    assert headers["www-authenticate"] == 'Bearer realm="agw"'

    status, headers, body = split_http(bash(f"{obtain}\n{with_token}"))
    assert status == 200, body
    echoed = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert "authorization" not in echoed
    assert echoed["host"] == "www.example.com"

    # The token the IdP hands out really is a token: a tampered copy is refused.
    token = bash(f"{obtain}\necho $TOKEN").strip()
    signature = token.rsplit(".", 1)[1]
    middle = len(signature) // 2
    bad = token[:-len(signature)] + signature[:middle] + ("A" if signature[middle] != "A" else "B") \
        + signature[middle + 1:]
    status, _, body = split_http(bash(f'curl -si localhost:{PROXY_PORT}/headers -H "Authorization: Bearer {bad}"'))
    assert (status, body) == (401, "authentication failure: signature invalid")


def test_the_steps_replicated_with_urllib(demo):
    base = f"http://127.0.0.1:{PROXY_PORT}"
    try:
        urllib.request.urlopen(urllib.request.Request(f"{base}/headers", headers={"Host": "www.example.com"}),
                               timeout=10)
        raise AssertionError("expected 401 without a token")
    except urllib.error.HTTPError as err:
        assert err.code == 401 and err.read() == b"authentication failure: no bearer token found"

    form = urllib.parse.urlencode({"grant_type": "password", "client_id": "my-application",
                                   "username": "user1", "password": "password"}).encode()
    token_url = f"http://127.0.0.1:{IDP_PORT}/realms/master/protocol/openid-connect/token"
    with urllib.request.urlopen(token_url, data=form, timeout=10) as response:
        token = json.loads(response.read())["access_token"]

    wrong = urllib.parse.urlencode({"grant_type": "password", "client_id": "my-application",
                                    "username": "user1", "password": "wrong"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(token_url, data=wrong, timeout=10)
    assert refused.value.code in (400, 401)

    request = urllib.request.Request(f"{base}/headers", headers={"Host": "www.example.com",
                                                                 "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        echoed = {k.lower() for k in json.loads(response.read())["headers"]}
    assert "authorization" not in echoed


def test_demo_refuses_clearly_when_its_ports_are_taken(demo):
    """A second demo cannot bind :8080/:8081: it says so and exits, instead of hanging or half-starting."""
    second = subprocess.run([sys.executable, "-m", "agw", "run", "--admin", "off"],
                            capture_output=True, text=True, timeout=30, env=agw_env())
    assert second.returncode != 0
    assert re.search(r"cannot (start the demo|listen)", second.stderr), second.stderr
