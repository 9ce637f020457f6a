/* Header rules from the configuration (add / set / remove) applied to a list of fields. */
#ifndef GH_FIELDS_H
#define GH_FIELDS_H

#include <stddef.h>

struct http_field;
struct cfg_header_rules;

/* Copy `in` to `out` without the fields `r` removes or sets, then append the set and add
 * fields. Returns the number of fields in `out`, or -1 if more than `cap`. `r` may be NULL. */
long fields_apply(const struct http_field *in, size_t n, const struct cfg_header_rules *r,
                  struct http_field *out, size_t cap);

/* Whether `name` is one of `r`'s removed or set names. */
int fields_rule_drops(const struct cfg_header_rules *r, const char *name, size_t len);

#endif
