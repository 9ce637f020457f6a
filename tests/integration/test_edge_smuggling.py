"""Edge: request smuggling and malformed framing over raw sockets.

Every case is sent followed by a good pipelined request. Each must be answered with the expected
status, the connection closed with nothing answered after it, and nothing may reach the backend:
a probe on a fresh connection afterwards must be the only request the backend saw. For errors
found in a chunked body (after the head may already have gone upstream), at most the request
itself may have reached the backend, and the upstream connection that carried it must never carry
another request.

One Gatehouse and one backend serve the whole module (the cases are many and independent)."""


import pytest

from conftest import EDGE_HOST, H1, edge_env, edge_probe

SMUG = f"GET /echo?smuggled=1 HTTP/1.1\r\nHost: {EDGE_HOST}\r\n\r\n".encode()
GOOD = f"GET /echo?pipelined=1 HTTP/1.1\r\nHost: {EDGE_HOST}\r\n\r\n".encode()
LIMITS = {"max_request_line": 1024, "max_header_size": 4096, "max_header_count": 50,
          "client_header_timeout": "2s", "client_body_timeout": "2s"}


def head(*lines, rl="POST /echo HTTP/1.1", host=True):
    first = [rl] + ([f"Host: {EDGE_HOST}"] if host else [])
    return ("\r\n".join(first + list(lines)) + "\r\n\r\n").encode("latin-1")


def chunked_head(*lines):
    return head("Transfer-Encoding: chunked", *lines)


B400, B501, B400_501 = {400}, {501}, {400, 501}

# name -> (raw bytes, acceptable statuses)
HEAD_CASES = {
    # Content-Length with Transfer-Encoding, in every order and flavour
    "cl-then-te": (head("Content-Length: 44", "Transfer-Encoding: chunked") + b"0\r\n\r\n" + SMUG, B400),
    "te-then-cl": (head("Transfer-Encoding: chunked", "Content-Length: 44") + b"0\r\n\r\n" + SMUG, B400),
    "te-with-cl-zero": (head("Transfer-Encoding: chunked", "Content-Length: 0") + b"0\r\n\r\n" + SMUG, B400),
    "te-Chunked-with-cl": (head("Content-Length: 5", "Transfer-Encoding: Chunked") + b"0\r\n\r\n", B400),
    "te-on-http10": (head("Transfer-Encoding: chunked", rl="POST /echo HTTP/1.0") + b"0\r\n\r\n" + SMUG, B400),
    "te-and-cl-on-http10": (head("Transfer-Encoding: chunked", "Content-Length: 5",
                                 rl="POST /echo HTTP/1.0") + b"0\r\n\r\n" + SMUG, B400),
    # Transfer-Encoding values
    "te-gzip-chunked": (head("Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n", B501),
    "te-chunked-gzip": (head("Transfer-Encoding: chunked, gzip") + b"0\r\n\r\n", B400_501),
    "te-chunked-twice-one-line": (head("Transfer-Encoding: chunked, chunked") + b"0\r\n\r\n", B400_501),
    "te-chunked-twice-two-lines": (head("Transfer-Encoding: chunked", "Transfer-Encoding: chunked")
                                   + b"0\r\n\r\n", B400_501),
    "te-identity": (head("Transfer-Encoding: identity") + b"0\r\n\r\n", B400),
    "te-xchunked": (head("Transfer-Encoding: xchunked") + b"0\r\n\r\n", B400),
    "te-quoted": (head('Transfer-Encoding: "chunked"') + b"0\r\n\r\n", B400_501),
    "te-empty": (head("Transfer-Encoding:") + b"0\r\n\r\n", B400_501),
    "te-obs-fold": (head("Transfer-Encoding:", " chunked") + b"0\r\n\r\n" + SMUG, B400),
    "te-space-before-colon": (head("Transfer-Encoding : chunked") + b"0\r\n\r\n" + SMUG, B400),
    "te-tab-before-colon": (head("Transfer-Encoding\t: chunked") + b"0\r\n\r\n" + SMUG, B400),
    "te-vertical-tab": (head("Transfer-Encoding:\x0bchunked") + b"0\r\n\r\n" + SMUG, B400),
    "te-nul": (head("Transfer-Encoding: chunked\x00") + b"0\r\n\r\n" + SMUG, B400),
    # Content-Length values
    "cl-duplicate-differing": (head("Content-Length: 5", "Content-Length: 44") + b"hello" + SMUG, B400),
    "cl-list-differing": (head("Content-Length: 5, 44") + b"hello" + SMUG, B400),
    "cl-plus-sign": (head("Content-Length: +5") + b"hello", B400),
    "cl-minus-sign": (head("Content-Length: -5") + b"hello", B400),
    "cl-hex": (head("Content-Length: 0x5") + b"hello", B400),
    "cl-space-inside": (head("Content-Length: 1 0") + b"hello", B400),
    "cl-decimal-point": (head("Content-Length: 5.0") + b"hello", B400),
    "cl-trailing-letter": (head("Content-Length: 5a") + b"hello", B400),
    "cl-empty": (head("Content-Length:") + b"hello", B400),
    "cl-overflow-2^64": (head("Content-Length: 18446744073709551616") + b"hello", {400, 413}),
    "cl-overflow-huge": (head("Content-Length: " + "9" * 40) + b"hello", {400, 413}),
    "cl-obs-fold": (head("Content-Length:", " 5") + b"hello", B400),
    "cl-space-before-colon": (head("Content-Length : 5") + b"hello" + SMUG, B400),
    # header syntax
    "obs-fold-space": (head("X-A: 1", " folded"), B400),
    "obs-fold-tab": (head("X-A: 1", "\tfolded"), B400),
    "whitespace-before-first-header": (b"GET /echo HTTP/1.1\r\n X-A: 1\r\nHost: " + EDGE_HOST.encode()
                                       + b"\r\n\r\n", B400),
    "space-before-colon": (head("X-A : 1"), B400),
    "bare-cr-in-value": (head("X-A: a\rb"), B400),
    "bare-cr-line-end": (b"GET /echo HTTP/1.1\rHost: " + EDGE_HOST.encode() + b"\r\n\r\n", B400),
    "bare-cr-header-end": (head("X-A: 1\rContent-Length: 5") + b"hello", B400),
    "nul-in-name": (head("X-\x00A: 1"), B400),
    "nul-in-value": (head("X-A: a\x00b"), B400),
    "del-in-value": (head("X-A: a\x7fb"), B400),
    "ctl-in-value": (head("X-A: a\x1bb"), B400),
    "name-paren": (head("X(a): 1"), B400),
    "name-at": (head("X@a: 1"), B400),
    "name-slash": (head("X/a: 1"), B400),
    "name-brace": (head("X{a}: 1"), B400),
    "name-quote": (head('X"a: 1'), B400),
    "name-high-byte": (head("X\xffa: 1"), B400),
    "empty-name": (head(": 1"), B400),
    "no-colon": (head("NoColonHere"), B400),
    # request line
    "missing-version": (head(rl="GET /echo"), B400),
    "two-spaces": (head(rl="GET  /echo HTTP/1.1"), B400),
    "trailing-space": (head(rl="GET /echo HTTP/1.1 "), B400),
    "tab-separators": (head(rl="GET\t/echo\tHTTP/1.1"), B400),
    "lowercase-version": (head(rl="GET /echo http/1.1"), B400),
    "version-leading-zero": (head(rl="GET /echo HTTP/01.1"), B400),
    "version-garbage": (head(rl="GET /echo HTTP/1.1x"), B400),
    "version-1.2": (head(rl="GET /echo HTTP/1.2"), {505}),
    "version-2.0": (head(rl="GET /echo HTTP/2.0"), {505}),
    "target-with-space": (head(rl="GET /a b HTTP/1.1"), B400),
    "target-with-ctl": (head(rl="GET /a\x01b HTTP/1.1"), B400),
    "target-with-nul": (head(rl="GET /a\x00b HTTP/1.1"), B400),
    "target-with-del": (head(rl="GET /a\x7fb HTTP/1.1"), B400),
    "method-bad-char": (head(rl="G(T /echo HTTP/1.1"), B400),
    "method-missing": (head(rl=" /echo HTTP/1.1"), B400),
    # limits
    "request-line-too-long": (head(rl="GET /" + "a" * 1100 + " HTTP/1.1"), {414}),
    "header-too-large": (head(*[f"X-{i}: {'v' * 500}" for i in range(10)]), {431}),
    "too-many-headers": (head(*[f"X-{i}: v" for i in range(60)]), {431}),
}

BODY_CASES = {   # the head is valid; the chunked body is not
    "chunk-size-not-hex": (chunked_head() + b"zz\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-size-negative": (chunked_head() + b"-5\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-size-0x": (chunked_head() + b"0x5\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-size-plus": (chunked_head() + b"+5\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-size-leading-space": (chunked_head() + b" 5\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-size-empty": (chunked_head() + b"\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-size-overflow-2^64": (chunked_head() + b"10000000000000000\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-size-overflow-17f": (chunked_head() + b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-ext-too-long": (chunked_head() + b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n" + SMUG,
                           {400, 413, 431}),
    "chunk-ext-ctl": (chunked_head() + b"5;a\x01b\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-bare-cr-size-line": (chunked_head() + b"5\rhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-missing-crlf-after-data": (chunked_head() + b"5\r\nhelloXX\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-data-longer-than-size": (chunked_head() + b"3\r\nhello\r\n0\r\n\r\n" + SMUG, B400),
    "chunk-last-then-garbage": (chunked_head() + b"0\r\nnot a trailer\r\n\r\n" + SMUG, B400),
    "trailer-obs-fold": (chunked_head() + b"0\r\nX-T: 1\r\n folded\r\n\r\n" + SMUG, B400),
    "trailer-space-before-colon": (chunked_head() + b"0\r\nX-T : 1\r\n\r\n" + SMUG, B400),
}

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from edge_env(tmp_path_factory, "smuggling", LIMITS)


probe = edge_probe


def send_case(gh, raw, statuses):
    with H1(gh.port, timeout=5) as c:
        try:
            c.send(raw + GOOD)
        except (BrokenPipeError, ConnectionResetError):
            pass   # it may refuse before we finished writing; the answer is still readable
        r = c.read_response()
        assert r.status in statuses, r
        assert c.closed_by_peer(), "connection not closed after a framing error"
        assert b"HTTP/1.1" not in c.buf, "answered the pipelined request after the error"


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_malformed_head_rejected_and_nothing_forwarded(env, name):
    gh, be = env
    raw, statuses = HEAD_CASES[name]
    before = len(be.requests)
    send_case(gh, raw, statuses)
    tag = probe(gh)
    seen = [t for _, _, t in be.requests[before:]]
    assert seen == [tag], f"reached the backend: {seen}"


@pytest.mark.parametrize("name", list(BODY_CASES))
def test_malformed_chunked_body_rejected_and_upstream_not_reused(env, name):
    gh, be = env
    raw, statuses = BODY_CASES[name]
    before = len(be.requests)
    send_case(gh, raw, statuses)
    tag = probe(gh)
    after = be.requests[before:]
    seen = [t for _, _, t in after]
    assert seen[-1] == tag and len(seen) <= 2, f"reached the backend: {seen}"
    assert not any("smuggled" in t or "pipelined" in t for t in seen), seen
    if len(after) == 2:     # the head went upstream: that connection must not be reused
        assert after[0][1:] == ["POST", "/echo"], after
        assert after[0][0] != after[1][0], "upstream connection reused after a broken body"


def test_capitalised_chunked_is_valid(env):
    gh, be = env
    before = len(be.requests)
    with H1(gh.port) as c:
        c.send(head("Transfer-Encoding: Chunked") + b"5\r\nhello\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["body_len"] == 5
        assert c.request("GET", "/echo?next=1", host=EDGE_HOST).status == 200
    assert [t for _, _, t in be.requests[before:]] == ["/echo", "/echo?next=1"]


def test_identical_content_length_twice_is_one_body(env):
    gh, be = env
    with H1(gh.port) as c:
        c.send(head("Content-Length: 5", "Content-Length: 5") + b"hello" + GOOD)
        r = c.read_response()
        if r.status == 200:     # accepting identical values is allowed; then framing must hold
            assert r.json()["body_len"] == 5
            assert c.read_response().json()["target"] == "/echo?pipelined=1"
        else:
            assert r.status == 400 and c.closed_by_peer()


def test_request_in_body_is_not_a_request(env):
    """A body that looks like a request stays a body, on both kinds of framing."""
    gh, be = env
    before = len(be.requests)
    with H1(gh.port) as c:
        r = c.request("POST", "/echo", body=SMUG, host=EDGE_HOST)
        assert r.json()["body_len"] == len(SMUG)
        c.send(chunked_head() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUG), SMUG))
        assert c.read_response().json()["body_len"] == len(SMUG)
        c.send(head("Content-Length: 0") + SMUG[:-2])   # then an incomplete head: waits
        assert c.read_response().json()["body_len"] == 0
    seen = [t for _, _, t in be.requests[before:]]
    assert seen == ["/echo", "/echo", "/echo"], seen


def test_http10_content_length_then_pipelined(env):
    gh, be = env
    before = len(be.requests)
    with H1(gh.port) as c:
        c.send(head("Content-Length: 5", "Connection: keep-alive", rl="POST /echo HTTP/1.0")
               + b"hello" + GOOD)
        r1 = c.read_response()
        assert r1.json()["body_len"] == 5
        r2 = c.read_response()
        assert r2.json()["target"] == "/echo?pipelined=1"
    assert [t for _, _, t in be.requests[before:]] == ["/echo", "/echo?pipelined=1"]


def test_enough_cases():
    assert len(HEAD_CASES) + len(BODY_CASES) >= 40
