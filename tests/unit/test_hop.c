/* Hop-by-hop fields and the fields kept out of trailer sections. */
#include "check.h"
#include "http/hop.h"

static int forbidden(const char *name)
{
    return hop_trailer_forbidden(name, strlen(name));
}

int main(void)
{
    /* RFC 9110 section 6.5.1: framing, routing, authentication, modifiers, content metadata */
    CHECK(forbidden("Host"));
    CHECK(forbidden("content-length"));
    CHECK(forbidden("Transfer-Encoding"));
    CHECK(forbidden("Authorization"));
    CHECK(forbidden("cookie"));
    CHECK(forbidden("Content-Type"));
    CHECK(forbidden("max-forwards"));
    CHECK(forbidden("If-None-Match"));
    CHECK(forbidden("Trailer"));
    CHECK(forbidden("TE"));
    CHECK(forbidden("connection"));
    CHECK(forbidden("Proxy-Authorization"));
    CHECK(forbidden("Via"));
    /* the forwarding headers are ours to set */
    CHECK(forbidden("X-Forwarded-For"));
    CHECK(forbidden("x-forwarded-proto"));
    CHECK(forbidden("X-FORWARDED-HOST"));
    CHECK(forbidden("x-forwarded-port"));
    CHECK(forbidden("x-forwarded-prefix"));
    CHECK(forbidden("x-forwarded-anything"));
    CHECK(forbidden("Forwarded"));
    CHECK(forbidden("X-Real-IP"));
    /* pseudo-header names never pass as fields */
    CHECK(forbidden(":authority"));
    CHECK(forbidden(":path"));
    /* ordinary trailers do */
    CHECK(!forbidden("x-checksum"));
    CHECK(!forbidden("grpc-status"));
    CHECK(!forbidden("server-timing"));
    CHECK(!forbidden("x-forwarded")); /* not one of ours: no dash-suffix */
    CHECK(!forbidden("forwarded-x"));
    return check_done("hop");
}
