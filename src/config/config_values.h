/* Scalar value parsers used inside the config module. The ones other modules may use
 * (durations, sizes, addresses) are declared in config.h. */
#ifndef GH_CONFIG_VALUES_H
#define GH_CONFIG_VALUES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Decimal digits only (no sign, no spaces), value <= max. Returns 0 on success. */
int cfg_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Parses and resolves an address like config_parse_addr, without copying the text. On failure
 * returns -1 and writes the reason to `why` (e.g. "expected host:port"). */
int cfg_resolve_addr(const char *s, struct sockaddr_storage *sa, socklen_t *len, char *why,
                     size_t whylen);

/* The port of an IPv4 or IPv6 address, in host order. */
uint16_t cfg_addr_port(const struct sockaddr_storage *sa);

#endif
