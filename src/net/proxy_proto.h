/* The PROXY protocol (HAProxy's, versions 1 and 2): a header a load balancer writes at the start
 * of a connection to name the client it forwards, since the connection itself comes from the
 * load balancer.
 *
 * pp_parse reads a header from the bytes received so far and says how long it is, so that the
 * caller takes exactly those bytes off the socket and leaves what follows (a TLS ClientHello, a
 * request) to the next reader. It never reads past `len` and keeps copies of what it keeps, so
 * the input may go away. pp_write_v1/v2 make the header for our own upstream connections. */
#ifndef GH_PROXY_PROTO_H
#define GH_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define PP_V1_MAX 107  /* the longest v1 header, CRLF included (the specification's bound) */
#define PP_V2_HEAD 16  /* signature, version and command, family, length */
#define PP_V2_MAX 1024 /* longest v2 address and TLV block we take (ours; AWS sends ~60) */
#define PP_MAX (PP_V2_HEAD + PP_V2_MAX)

#define PP_ALPN_MAX 64
#define PP_AUTHORITY_MAX 255
#define PP_SSL_TEXT_MAX 64

/* The TLVs of a v2 header we understand. Kept for logging or later use; nothing acts on them. */
struct pp_tlvs {
    char alpn[PP_ALPN_MAX + 1];           /* PP2_TYPE_ALPN, "" when absent (cut to PP_ALPN_MAX) */
    char authority[PP_AUTHORITY_MAX + 1]; /* PP2_TYPE_AUTHORITY: the SNI the client sent */
    bool ssl;                             /* PP2_TYPE_SSL present */
    uint8_t ssl_client;                   /* its client bits (PP2_CLIENT_SSL, ...) */
    uint32_t ssl_verify;                  /* 0: the client's certificate was verified */
    char ssl_version[PP_SSL_TEXT_MAX + 1];
    char ssl_cn[PP_SSL_TEXT_MAX + 1];
    char ssl_cipher[PP_SSL_TEXT_MAX + 1];
    bool crc32c;    /* a checksum was present (not checked) */
    bool unique_id; /* PP2_TYPE_UNIQUE_ID present */
    unsigned other; /* TLVs of other types (AWS's 0xEA, ...), skipped */
};

struct pp_header {
    int version; /* 1 or 2 */
    /* Whether src and dst hold the client's addresses (AF_INET or AF_INET6). False for a v2
     * LOCAL command (a health check of the balancer itself), a v2 UNSPEC or UNIX family and a
     * v1 UNKNOWN: the connection's own peer stays the client. */
    bool has_addrs;
    bool local; /* v2 LOCAL command */
    struct sockaddr_storage src, dst;
    socklen_t addr_len;
    struct pp_tlvs tlvs; /* v2 only; zero for v1 */
};

/* What pp_parse found in the first `len` bytes of a connection. */
enum {
    PP_NEED_MORE = 0, /* a valid beginning: wait for more bytes */
    PP_BAD = -1,      /* not a valid header (or not one at all): close the connection */
};

/* > 0: a complete header of that many bytes, described in *h. PP_NEED_MORE or PP_BAD otherwise;
 * on PP_BAD *why says what was wrong (a static string). */
ssize_t pp_parse(const uint8_t *p, size_t len, struct pp_header *h, const char **why);

/* The header for a connection from `src` to `dst`; when either is NULL or not an IP address, or
 * they differ in family, the header says UNKNOWN (v1) / LOCAL (v2: `local` too). Returns the
 * length written, or 0 when `cap` is too small (PP_V1_MAX / PP_V2_HEAD + 36 suffice). */
size_t pp_write_v1(char *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst);
size_t pp_write_v2(uint8_t *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst,
                   bool local);

#endif
