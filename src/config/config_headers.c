/* Header fields the configuration adds, sets or removes: the request_headers and
 * response_headers rules of sites and routes, and the secret_header of upstreams. */
#include "config/config_walk.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

enum {
    MAX_NAME = 256,   /* longer names are mistakes */
    MAX_VALUE = 8192, /* a field must fit in a request head with room for the rest */
};

/* Framing and connection management belong to the proxy: a rule changing them could desync
 * the two sides of a connection. Host is owned by host_header on the way to the upstream. */
static const char *const request_owned[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer",        "upgrade",           "host",       NULL};
static const char *const response_owned[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer",        "upgrade",           NULL};

/* RFC 9110 5.6.2: tchar. */
static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

static bool owned(const char *const *names, const char *name)
{
    for (size_t i = 0; names && names[i]; i++) {
        if (!strcasecmp(names[i], name))
            return true;
    }
    return false;
}

/* A header name in a rule of field `f`, whose f->names are the names it may not touch. */
static const char *header_name(struct load *ld, const struct field *f, const struct ynode *node)
{
    if (node->kind != YNODE_SCALAR) {
        cfg_report(ld, node, "a header name in '%s' must be a string, not a %s", f->key,
                   node->kind == YNODE_MAP ? "map" : "list");
        return NULL;
    }
    if (node->len > MAX_NAME || !is_token(node->text, node->len)) {
        cfg_report(ld, node,
                   "bad header name '%.64s' (letters, digits and !#$%%&'*+-.^_`|~ only, at most "
                   "%d)",
                   node->text, MAX_NAME);
        return NULL;
    }
    if (!strcasecmp(node->text, "host") && owned(f->names, "host")) {
        cfg_report(ld, node, "header 'Host' cannot be changed here (see 'host_header')");
        return NULL;
    }
    if (owned(f->names, node->text)) {
        cfg_report(ld, node, "header '%s' is managed by the proxy and cannot be changed",
                   node->text);
        return NULL;
    }
    return node->text;
}

/* Values may hold HTAB and any byte from SP on (obs-text included), but no other control
 * character: CR or LF would split the field. */
static bool value_chars_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static const char *header_value(struct load *ld, const char *name, const struct ynode *node)
{
    const char *s;

    if (node->is_null) {
        cfg_report(ld, node, "'%s' needs a value (\"\" for an empty one)", name);
        return NULL;
    }
    s = cfg_text(ld, name, node, "a string");
    if (!s)
        return NULL;
    if (!value_chars_ok(s)) {
        cfg_report(ld, node, "'%s' must not contain control characters", name);
        return NULL;
    }
    if (node->len > MAX_VALUE) {
        cfg_report(ld, node, "'%s' must be at most 8k long", name);
        return NULL;
    }
    return s;
}

static size_t *op_count(struct cfg_header_rules *r, const struct field *f)
{
    return f->offset == offsetof(struct cfg_header_rules, add) ? &r->nadd : &r->nset;
}

/* add / set: a map from header name to value. */
static void conv_header_map(struct load *ld, const struct field *f, const struct ynode *val,
                            void *base)
{
    struct cfg_header_op **ops = CFG_AT(base, f, struct cfg_header_op *);
    size_t *n = op_count(base, f);
    char what[80];

    snprintf(what, sizeof what, "'%s'", f->key);
    if (!cfg_want(ld, what, val, YNODE_MAP) ||
        !(*ops = cfg_alloc(ld, val->nitems / 2 * sizeof **ops)))
        return;
    for (size_t i = 0; i + 1 < val->nitems; i += 2) {
        const struct ynode *k = val->items[i], *v = val->items[i + 1];
        const char *name = header_name(ld, f, k), *value = name ? header_value(ld, name, v) : NULL;
        if (!value)
            continue;
        (*ops)[*n] = (struct cfg_header_op){cfg_strdup(ld, name, k->len),
                                            cfg_strdup(ld, value, v->len), k->len, v->len};
        (*n)++;
    }
}

/* remove: a list of header names. */
static void conv_header_list(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base)
{
    struct cfg_header_rules *r = base;
    char what[80];

    snprintf(what, sizeof what, "'%s'", f->key);
    if (!cfg_want(ld, what, val, YNODE_LIST) ||
        !(r->remove = cfg_alloc(ld, val->nitems * sizeof *r->remove)))
        return;
    for (size_t i = 0; i < val->nitems; i++) {
        const struct ynode *item = val->items[i];
        if (header_name(ld, f, item))
            r->remove[r->nremove++] = cfg_strdup(ld, item->text, item->len);
    }
}

#define RULE_FIELDS(owned_names)                                                                   \
    {                                                                                              \
        {FIELD("add", conv_header_map, struct cfg_header_rules, add, NULL),                        \
         .names = (owned_names)},                                                                  \
            {FIELD("set", conv_header_map, struct cfg_header_rules, set, NULL),                    \
             .names = (owned_names)},                                                              \
        {                                                                                          \
            FIELD("remove", conv_header_list, struct cfg_header_rules, remove, NULL),              \
                .names = (owned_names)                                                             \
        }                                                                                          \
    }

static const struct field request_rule_fields[] = RULE_FIELDS(request_owned);
static const struct field response_rule_fields[] = RULE_FIELDS(response_owned);
const struct fields cfg_request_rules = FIELDS(request_rule_fields);
const struct fields cfg_response_rules = FIELDS(response_rule_fields);

static const struct {
    const char *key;
    enum ynode_kind kind;
} rule_parts[] = {{"add", YNODE_MAP}, {"set", YNODE_MAP}, {"remove", YNODE_LIST}};

_Static_assert(sizeof(size_t) >= 8, "key positions pack line and column into a size_t");

/* The header names written in one rules map, lowercased, for the duplicate check. Keys are
 * ordered by position in the file, so that the first written is the one kept. */
static size_t collect_names(struct load *ld, const struct ynode *rules, struct cfg_key *keys)
{
    size_t n = 0;

    for (size_t p = 0; p < sizeof rule_parts / sizeof *rule_parts; p++) {
        const struct ynode *v = cfg_get(rules, rule_parts[p].key);
        size_t step = rule_parts[p].kind == YNODE_MAP ? 2 : 1;
        if (!v || v->kind != rule_parts[p].kind)
            continue;
        for (size_t i = 0; i < v->nitems; i += step) {
            const struct ynode *k = v->items[i];
            char *lower = k->kind == YNODE_SCALAR ? cfg_scratch(ld, k->len + 1) : NULL;
            if (!lower)
                continue;
            for (size_t j = 0; j < k->len; j++)
                lower[j] = (char)tolower((unsigned char)k->text[j]);
            keys[n++] =
                (struct cfg_key){lower, k->len, (size_t)k->line << 32 | (unsigned)k->col, k};
        }
    }
    return n;
}

static size_t count_names(const struct ynode *rules)
{
    size_t n = 0;

    for (size_t p = 0; p < sizeof rule_parts / sizeof *rule_parts; p++) {
        const struct ynode *v = cfg_get(rules, rule_parts[p].key);
        if (v)
            n += v->nitems;
    }
    return n;
}

/* Each name once per rules map, whatever its case: "set X" with "remove x", or "add X" with
 * "set X", would leave the result to the order in which rules run. */
static void check_names_once(struct load *ld, const struct field *f, const struct ynode *rules)
{
    size_t n = count_names(rules);
    struct cfg_key *keys = cfg_scratch(ld, n * sizeof *keys);

    if (!keys)
        return;
    n = collect_names(ld, rules, keys);
    cfg_sort_keys(keys, n);
    for (size_t i = 0; i < n; i++) {
        if (cfg_key_repeats(keys, i))
            cfg_report(ld, keys[i].node, "header '%.64s' appears twice in '%s' (first at line %d)",
                       keys[i].node->text, f->key, keys[i - 1].node->line);
    }
}

void cfg_conv_header_rules(struct load *ld, const struct field *f, const struct ynode *val,
                           void *base)
{
    char what[80], where[80];

    snprintf(what, sizeof what, "'%s'", f->key);
    snprintf(where, sizeof where, "in '%s'", f->key);
    if (!cfg_want(ld, what, val, YNODE_MAP))
        return;
    cfg_walk(ld, val, val, f->sub, (char *)base + f->offset, where);
    check_names_once(ld, f, val);
}

/* ---- secret_header of upstreams ---- */

static void conv_secret_name(struct load *ld, const struct field *f, const struct ynode *val,
                             void *base)
{
    if (header_name(ld, f, val))
        *CFG_AT(base, f, char *) = cfg_strdup(ld, val->text, val->len);
}

static void conv_secret_value(struct load *ld, const struct field *f, const struct ynode *val,
                              void *base)
{
    if (val->kind == YNODE_SCALAR && val->len == 0) {
        cfg_report(ld, val, "'%s' must not be empty", f->key);
        return;
    }
    if (header_value(ld, f->key, val))
        *CFG_AT(base, f, char *) = cfg_strdup(ld, val->text, val->len);
}

static const struct field secret_fields[] = {
    {FIELD("name", conv_secret_name, struct cfg_upstream, secret_name, NULL), .flags = F_REQUIRED,
     .names = request_owned},
    {FIELD("value", conv_secret_value, struct cfg_upstream, secret_value, NULL),
     .flags = F_REQUIRED},
};
static const struct fields secret_table = FIELDS(secret_fields);

void cfg_conv_secret_header(struct load *ld, const struct field *f, const struct ynode *val,
                            void *base)
{
    char what[80], where[80];

    snprintf(what, sizeof what, "'%s'", f->key);
    snprintf(where, sizeof where, "in '%s'", f->key);
    if (cfg_want(ld, what, val, YNODE_MAP))
        cfg_walk(ld, val, val, &secret_table, base, where);
}
