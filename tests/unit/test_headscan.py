"""The C head scanner (agw/proxy/headscan.pyx) against llhttp: whatever the scanner takes, llhttp must parse
to the same request or response; everything unusual must be left to llhttp (None)."""
from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings, strategies as st

headscan = pytest.importorskip("agw.proxy.headscan")
scan_request = headscan.scan_request
scan_response = headscan.scan_response

SPECIAL = frozenset((b"authorization", b"cookie", b"connection", b"x-forwarded-for", b"keep-alive", b"te"))
LIMIT = 65536


class _Collect:
    def __init__(self) -> None:
        self.url = b""
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = 0
        self.body = b""
        self.parser = None
        self.keep_alive = None   # as the proxy reads it: in on_message_complete

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1
        self.keep_alive = self.parser.should_keep_alive()


def llhttp_request(data: bytes):
    c = _Collect()
    p = c.parser = httptools.HttpRequestParser(c)
    try:
        p.feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    return c, p


def check_request_agrees(data: bytes) -> None:
    got = scan_request(data, 0, SPECIAL, LIMIT, 100)
    if got is None:
        return
    end, method, target, special, lines, fields, keep_alive, http10 = got
    parsed = llhttp_request(data[:end])
    assert parsed is not None, f"scanner took what llhttp refuses: {data!r}"
    c, p = parsed
    assert c.complete == 1 and c.body == b"", "the scanner only takes body-less requests"
    assert p.get_method() == method and c.url == target
    assert (p.get_http_version() == "1.0") == http10
    assert c.keep_alive == keep_alive
    assert fields == {n.lower(): v for n, v in c.headers}
    # Every field is either passed on as a line or handed over for a decision, in order within each.
    assert lines == b"".join(n + b": " + v + b"\r\n" for n, v in c.headers
                             if n.lower() not in SPECIAL and not n.lower().startswith(b"proxy-"))
    assert [(n.lower(), n, v) for n, v in c.headers
            if n.lower() in SPECIAL or n.lower().startswith(b"proxy-")] == special


def check_response_agrees(data: bytes) -> None:
    got = scan_response(data, LIMIT)
    if got is None:
        return
    end, status, reason, lines, length, keep_alive = got
    c = _Collect()
    p = c.parser = httptools.HttpResponseParser(c)
    try:
        p.feed_data(data[:end] + b"x" * length)
    except httptools.HttpParserError:
        pytest.fail(f"scanner took what llhttp refuses: {data!r}")
    assert c.complete == 1 and len(c.body) == length
    assert p.get_status_code() == status and c.reason == reason
    assert c.keep_alive == keep_alive
    hop = {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
    assert lines == b"".join(n + b": " + v + b"\r\n" for n, v in c.headers
                             if n.lower() not in hop and not n.lower().startswith(b"proxy-"))


PLAIN = (b"GET /headers?a=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
         b"Authorization: Bearer a.b.c\r\n\r\n")


def test_plain_request_is_taken_whole():
    end, method, target, special, lines, fields, keep_alive, http10 = scan_request(PLAIN, 0, SPECIAL, LIMIT, 100)
    assert end == len(PLAIN) and method == b"GET" and target == b"/headers?a=1"
    assert special == [(b"authorization", b"Authorization", b"Bearer a.b.c")]
    assert lines == b"Host: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
    assert fields[b"host"] == b"127.0.0.1:8080" and keep_alive and not http10
    check_request_agrees(PLAIN)


def test_every_proxy_field_is_set_aside_even_one_named_just_proxy_dash():
    head = PLAIN.replace(b"Accept: */*", b"Proxy-: x\r\nProxy-Authorization: Basic y")
    special = scan_request(head, 0, SPECIAL, LIMIT, 100)[3]
    assert [name for _, name, _ in special] == [b"Proxy-", b"Proxy-Authorization", b"Authorization"]
    check_request_agrees(head)


def test_pipelined_requests_are_taken_one_by_one():
    data = PLAIN + PLAIN.replace(b"GET", b"HEAD")
    first = scan_request(data, 0, SPECIAL, LIMIT, 100)
    second = scan_request(data, first[0], SPECIAL, LIMIT, 100)
    assert second[0] == len(data) and second[1] == b"HEAD"


@pytest.mark.parametrize("head", [
    PLAIN[:-2],                                                        # incomplete
    PLAIN.replace(b"GET", b"CONNECT"),                                 # a method the scanner leaves alone
    PLAIN.replace(b"GET", b"get"),
    PLAIN.replace(b"HTTP/1.1", b"HTTP/2.0"),
    PLAIN.replace(b"User-Agent: wrk", b"User-Agent: wrk\r\n more"),    # obs-fold
    PLAIN.replace(b"Accept: */*\r\n", b"Accept: */*\n"),               # bare LF
    PLAIN.replace(b"Accept:", b"Accept :"),                            # whitespace before the colon
    PLAIN.replace(b"wrk", b"wrk "),                                    # trailing whitespace
    PLAIN.replace(b"wrk", b"w\x80rk"),                                 # obs-text
    PLAIN.replace(b"wrk", b"w\x00rk"),
    PLAIN.replace(b"Accept: */*", b"Host: other"),                     # two Hosts: llhttp path refuses
    PLAIN.replace(b"Accept: */*", b"Content-Length: 5"),               # a body
    PLAIN.replace(b"Accept: */*", b"Content-Length: 00"),
    PLAIN.replace(b"Accept: */*", b"Transfer-Encoding: chunked"),
    PLAIN.replace(b"Accept: */*", b"Upgrade: h2c"),
    PLAIN.replace(b"Accept: */*", b"Connection: keep-alive, X-Secret"),  # names another field
    PLAIN.replace(b"/headers?a=1", b"/a b"),
    PLAIN.replace(b"/headers?a=1", b"/a#frag"),
    PLAIN.replace(b"Accept: */*", b"X-Empty:"),
])
def test_unusual_requests_are_left_to_llhttp(head):
    assert scan_request(head, 0, SPECIAL, LIMIT, 100) is None


def test_limits_leave_big_heads_to_llhttp():
    assert scan_request(PLAIN, 0, SPECIAL, len(PLAIN) - 1, 100) is None    # llhttp's path answers 431
    assert scan_request(PLAIN, 0, SPECIAL, LIMIT, 3) is None
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"
    assert scan_request(many, 0, SPECIAL, LIMIT, 1000) is None              # over the scanner's own bound


def test_keep_alive_follows_version_and_connection():
    def keep(version: bytes, connection: bytes | None) -> bool:
        extra = b"Connection: " + connection + b"\r\n" if connection else b""
        return scan_request(b"GET / " + version + b"\r\nHost: a\r\n" + extra + b"\r\n", 0, SPECIAL, LIMIT,
                            100)[6]
    assert keep(b"HTTP/1.1", None) and not keep(b"HTTP/1.1", b"close") and keep(b"HTTP/1.1", b"Keep-Alive")
    assert not keep(b"HTTP/1.0", None) and keep(b"HTTP/1.0", b"keep-alive")


RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
            b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Thing: x\r\n\r\nhello")


def test_plain_response_drops_hop_by_hop_fields():
    end, status, reason, lines, length, keep_alive = scan_response(RESPONSE, LIMIT)
    assert RESPONSE[end:] == b"hello" and status == 200 and reason == b"OK" and length == 5 and keep_alive
    assert lines == b"Server: nginx\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    assert not scan_response(RESPONSE.replace(b"keep-alive", b"close"), LIMIT)[5]
    check_response_agrees(RESPONSE)


@pytest.mark.parametrize("head", [
    RESPONSE[:30],
    RESPONSE.replace(b"HTTP/1.1", b"HTTP/1.0"),
    RESPONSE.replace(b"200 OK", b"100 Continue"),
    RESPONSE.replace(b"200 OK", b"204 No Content"),
    RESPONSE.replace(b"200 OK", b"304 Not Modified"),
    RESPONSE.replace(b"200 OK", b"200"),
    RESPONSE.replace(b"Content-Length: 5", b"Transfer-Encoding: chunked"),
    RESPONSE.replace(b"Content-Length: 5\r\n", b""),                        # close-delimited
    RESPONSE.replace(b"Server: nginx", b"Content-Length: 5"),               # two lengths
    RESPONSE.replace(b"Content-Length: 5", b"Content-Length: +5"),
    RESPONSE.replace(b"Content-Length: 5", b"Content-Length: 1234567890123456"),
    RESPONSE.replace(b"Connection: keep-alive", b"Connection: X-Internal"),
    RESPONSE.replace(b"Server: nginx", b"Server: nginx\r\n folded"),
])
def test_unusual_responses_are_left_to_llhttp(head):
    assert scan_response(head, LIMIT) is None


# Differential property: heads built from plain and hostile pieces; whatever the scanner takes, llhttp
# parses the same way.
def _mostly(plain: list[bytes], odd: list[bytes]):
    """Plain pieces three times out of four, so that many heads reach the scanner's accepting path."""
    return st.one_of(st.sampled_from(plain), st.sampled_from(plain), st.sampled_from(plain), st.sampled_from(odd))


_methods = _mostly([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"],
                   [b"CONNECT", b"PRI", b"get", b"G ET", b""])
_targets = _mostly([b"/", b"/a?b=c&d", b"http://h/x", b"/~!$&'()*+,;=:@", b"*", b"/[::1]"],
                   [b"/%41%", b"/a b", b"/\x7f", b"", b"/a#b", b"/\xc3\xa9"])
_versions = _mostly([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "])
_names = _mostly([b"Host", b"host", b"Content-Length", b"Connection", b"Authorization", b"Cookie", b"X-A",
                  b"Proxy-Foo", b"Keep-Alive", b"TE", b"X-Forwarded-For", b"User-Agent"],
                 [b"Transfer-Encoding", b"Upgrade", b"X A", b"", b"X\x00", b"\xc3\xa9", b"Proxy-"])
_values = _mostly([b"0", b"close", b"keep-alive", b"Keep-Alive", b"a", b"a\tb", b"text/plain; q=1", b"*/*"],
                  [b"5", b"chunked", b"upgrade, close", b"  spaced", b"trail ", b"a\x80b", b"", b"x\r\n y",
                   b"-1", b"v\x01", b"h2c", b"gzip, chunked"])
_seps = _mostly([b": ", b":", b":\t"], [b" : ", b"::"])
_eols = _mostly([b"\r\n"], [b"\n", b"\r"])
_odd_field = st.tuples(_names, _seps, _values, _eols).map(lambda t: b"".join(t))
_plain_field = st.sampled_from([b"Host: h\r\n", b"Accept: */*\r\n", b"Authorization: Bearer x\r\n",
                                b"X-Forwarded-For: 1.2.3.4\r\n", b"Proxy-A: b\r\n", b"Connection: close\r\n",
                                b"connection: Keep-Alive\r\n", b"Content-Length: 0\r\n", b"Cookie: a=b\r\n",
                                b"TE: trailers\r\n", b"User-Agent: u a\r\n", b"X-B:c\r\n"])
_field = st.one_of(_plain_field, _plain_field, _odd_field)


@settings(max_examples=1000, deadline=None)
@given(_methods, _targets, _versions, st.lists(_field, max_size=5, unique=True), _eols)
def test_scanner_agrees_with_llhttp_on_requests(method, target, version, fields, last_eol):
    check_request_agrees(method + b" " + target + b" " + version + b"\r\n" + b"".join(fields) + last_eol)


_statuses = _mostly([b"200 OK", b"404 Not Found", b"200 ", b"599 X", b"302 Found"],
                    [b"200", b"101 Switching", b"600 X", b"20 X", b"204 No Content", b"500 \xc3\xa9"])
_response_fields = st.lists(st.one_of(_field, st.sampled_from([b"Content-Length: 7\r\n", b"Content-Length: 0\r\n"])),
                            max_size=5)


@settings(max_examples=1000, deadline=None)
@given(_mostly([b"HTTP/1.1"], [b"HTTP/1.0", b"HTTP/2"]), _statuses, _response_fields, _eols)
def test_scanner_agrees_with_llhttp_on_responses(version, status, fields, last_eol):
    check_response_agrees(version + b" " + status + b"\r\n" + b"".join(fields) + last_eol)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(
    st.binary(max_size=12),
    st.lists(st.sampled_from([b"a", b"Z", b"0", b".", b"-", b"%", b"~", b"[", b"]", b":", b"f", b"::1", b"8080",
                              b" ", b"/", b"@", b"\xff", b"_", b"!"]), max_size=8).map(b"".join)))
def test_host_check_matches_the_rfc_3986_grammar(host):
    from agw.proxy.exchange import _VALID_HOST
    assert headscan.valid_host(host) == (_VALID_HOST(host) is not None)


@pytest.mark.parametrize("host,ok", [(b"", True), (b"example.com:8080", True), (b"[::1]:80", True),
                                     (b"[::1", False), (b"[]", False), (b"a b", False), (b"a:80x", False),
                                     (b"a/b", False), (b"a@b", False), (b"[::1]x", False)])
def test_host_check_examples(host, ok):
    assert headscan.valid_host(host) is ok
