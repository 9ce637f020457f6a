/* Content-coding negotiation (RFC 9110 section 12.5.3) and the rules that say whether a
 * response may be compressed at all. Pure functions over header values: no I/O, no allocation.
 *
 * Negotiation: every member of Accept-Encoding is `coding [ OWS ";" OWS "q=" qvalue ]`. Tokens
 * are case-insensitive, "x-gzip" is gzip, "*" stands for every coding not listed (identity
 * included), q=0 refuses. A member that does not follow the grammar (bad token, bad qvalue such
 * as "q=1.5" or "q=0.1234", another parameter) is ignored, as if absent. A coding listed twice
 * gets its lowest weight (a refusal anywhere stands).
 *
 * Choice: the available coding (the server's list, in its order of preference) with the highest
 * weight wins; equal weights go to the earlier one in the server's list. Identity wins only when
 * it is listed with a weight higher than every coding's; with no Accept-Encoding at all, or an
 * empty one, nothing is compressed. When identity is refused ("identity;q=0", or "*;q=0" without
 * an identity entry) and no coding is acceptable, the response is still sent as it is, not 406:
 * RFC 9110 section 12.1 allows disregarding the field, and nginx and Caddy do the same (a 406
 * for a resource that exists breaks more clients than it helps). The result says so, for logs. */
#ifndef GH_HTTP_ACCEPT_ENCODING_H
#define GH_HTTP_ACCEPT_ENCODING_H

#include "http/encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The client's weights, from one or more Accept-Encoding field lines. q in thousandths. */
struct accept_encoding {
    bool present;                    /* a field line was seen (possibly empty) */
    bool listed[ENCODER_KIND_COUNT]; /* indexed by enum encoder_kind; IDENTITY included */
    uint16_t q[ENCODER_KIND_COUNT];
    bool star_listed;
    uint16_t star_q;
};

struct accept_encoding_choice {
    enum encoder_kind kind; /* the coding to apply; ENCODER_IDENTITY for none */
    bool identity_refused;  /* the client refused identity and nothing else fit: sent anyway */
};

void accept_encoding_init(struct accept_encoding *ae);
/* Add one field line's value (call once per line: repeated lines form one list). */
void accept_encoding_parse(struct accept_encoding *ae, const char *value, size_t len);
/* The weight (0-1000) the client gives a coding: its own entry, else "*"'s; -1 when neither
 * mentions it (for identity that means acceptable, below every listed coding). */
int accept_encoding_weight(const struct accept_encoding *ae, enum encoder_kind kind);
/* Choose among `avail` (server preference order; duplicates and IDENTITY in it are ignored). */
struct accept_encoding_choice accept_encoding_choose(const struct accept_encoding *ae,
                                                     const enum encoder_kind *avail, size_t navail);

/* ---- may this response be compressed? ---- */

/* A content type against a list of media ranges: exact ("application/json"), a type wildcard
 * ("text/" then a star: any text subtype) or star-slash-star (anything):
 * case-insensitive, parameters and whitespace ignored. */
bool accept_encoding_type_listed(const char *ctype, size_t len, const char *const *types,
                                 size_t ntypes);
/* Cache-Control carries the no-transform directive (quoted values are skipped, not matched). */
bool accept_encoding_no_transform(const char *cache_control, size_t len);

struct accept_encoding_response {
    int status;
    const char *content_type; /* NULL if absent */
    size_t content_type_len;
    const char *cache_control; /* NULL if absent (all lines joined with ", ") */
    size_t cache_control_len;
    bool has_content_encoding; /* any Content-Encoding, even "identity" */
    bool has_content_length;
    uint64_t content_length;
    bool request_has_range; /* the request carried Range */
};

struct accept_encoding_policy {
    const char *const *types;
    size_t ntypes;
    uint64_t min_size; /* smaller bodies (by Content-Length) are sent as they are */
};

/* Whether the response is eligible for compression. Not eligible: 1xx, 204, 206, 304, a request
 * with Range, Content-Encoding present, Cache-Control no-transform, a type not listed (or no
 * Content-Type), a Content-Length below min_size. A body of unknown length is eligible. */
bool accept_encoding_compressible(const struct accept_encoding_policy *pol,
                                  const struct accept_encoding_response *res);

/* The ETag of a compressed variant: `"x"` -> `W/"x"`; a weak one is copied as it is. Writes to
 * out (no NUL) and returns the length; 0 when it does not fit or the ETag is malformed (then the
 * caller drops the field: a strong validator must not describe other bytes). */
size_t accept_encoding_weaken_etag(const char *etag, size_t len, char *out, size_t cap);

#endif
