#include "http/fields.h"

#include "config/config.h"
#include "http/request.h"

#include <string.h>
#include <strings.h>

static int same_name(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

int fields_rule_drops(const struct cfg_header_rules *r, const char *name, size_t len)
{
    if (!r)
        return 0;
    for (size_t i = 0; i < r->nremove; i++)
        if (same_name(r->remove[i], strlen(r->remove[i]), name, len))
            return 1;
    for (size_t i = 0; i < r->nset; i++)
        if (same_name(r->set[i].name, r->set[i].name_len, name, len))
            return 1;
    return 0;
}

static struct http_field field_of(const struct cfg_header_op *op)
{
    return (struct http_field){op->name, op->value, (uint32_t)op->name_len,
                               (uint32_t)op->value_len};
}

long fields_apply(const struct http_field *in, size_t n, const struct cfg_header_rules *r,
                  struct http_field *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (fields_rule_drops(r, in[i].name, in[i].name_len))
            continue;
        if (k == cap)
            return -1;
        out[k++] = in[i];
    }
    if (!r)
        return (long)k;
    if (k + r->nset + r->nadd > cap)
        return -1;
    for (size_t i = 0; i < r->nset; i++)
        out[k++] = field_of(&r->set[i]);
    for (size_t i = 0; i < r->nadd; i++)
        out[k++] = field_of(&r->add[i]);
    return (long)k;
}
