/* The WebSocket opening handshake's key and its proof (RFC 6455 section 4), for an HTTP/2
 * extended CONNECT (RFC 8441) that Gatehouse turns into an HTTP/1.1 upgrade: the HTTP/2 client
 * sends no key, so the proxy makes one and checks the upstream's answer to it. */
#ifndef GH_WS_KEY_H
#define GH_WS_KEY_H

#include <stdbool.h>
#include <stddef.h>

#define WS_KEY_LEN 24    /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* A fresh Sec-WebSocket-Key: base64 of 16 random bytes, NUL-terminated in out. 0 or -1. */
int ws_key_new(char out[WS_KEY_LEN + 1]);
/* Whether `accept` is the Sec-WebSocket-Accept value that proves `key` was read. */
bool ws_accept_ok(const char *key, const char *accept, size_t accept_len);

#endif
