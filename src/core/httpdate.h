/* HTTP-date (RFC 9110 section 5.6.7): formatting as IMF-fixdate, and parsing of IMF-fixdate and
 * the two obsolete formats recipients must accept (rfc850-date, asctime-date). Independent of the
 * locale and the TZ variable (no strftime, no timegm). In core because the access log's cached
 * Date string is made here too. */
#ifndef GH_CORE_HTTPDATE_H
#define GH_CORE_HTTPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes. */
#define HTTPDATE_LEN 29

/* Writes the IMF-fixdate of `t` (seconds since the epoch, UTC) and a NUL to out[0..29]. Years
 * outside 0..9999 are clamped to the first/last second of that range. Returns HTTPDATE_LEN. */
size_t httpdate_format(int64_t t, char out[HTTPDATE_LEN + 1]);

/* Parses one HTTP-date (IMF-fixdate, rfc850-date or asctime-date) that must fill [s, s+len)
 * exactly, apart from leading and trailing OWS. A two-digit rfc850 year is read as the most
 * recent year with those digits that is not more than 50 years after `now` (RFC 9110 5.6.7).
 * Day names are checked for spelling, not against the date. Returns false for anything else
 * (a list of dates, a bad field, 31 Feb, a zone other than GMT). */
bool httpdate_parse(const char *s, size_t len, int64_t now, int64_t *out);

#endif
