/* Converters for the common value types of field tables: each checks a value, reports what
 * is wrong with it in the user's terms, and stores it at base + f->offset. */
#include "config/config_values.h"
#include "config/config_walk.h"
#include "core/bug.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef void (*fmt_fn)(char *buf, size_t len, uint64_t v);

static void fmt_plain(char *buf, size_t len, uint64_t v)
{
    snprintf(buf, len, "%" PRIu64, v);
}

/* Bounds are printed the way one would write them: 64k rather than 65536. */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
    static const struct {
        uint64_t factor;
        char unit;
    } units[] = {{1ULL << 30, 'g'}, {1ULL << 20, 'm'}, {1ULL << 10, 'k'}};

    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (v && v % units[i].factor == 0) {
            snprintf(buf, len, "%" PRIu64 "%c", v / units[i].factor, units[i].unit);
            return;
        }
    }
    fmt_plain(buf, len, v);
}

static void fmt_ms(char *buf, size_t len, uint64_t v)
{
    static const struct {
        uint64_t factor;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};

    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (v && v % units[i].factor == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", v / units[i].factor, units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64 "ms", v);
}

static bool in_range(struct load *ld, const struct field *f, const struct ynode *val, uint64_t v,
                     uint64_t max, fmt_fn fmt)
{
    char bound[32];

    if (v < f->min) {
        if (f->min == 1) {
            cfg_report(ld, val, "'%s' must be greater than 0", f->key);
        } else {
            fmt(bound, sizeof bound, f->min);
            cfg_report(ld, val, "'%s' must be at least %s", f->key, bound);
        }
        return false;
    }
    if (v > max) {
        fmt(bound, sizeof bound, max);
        cfg_report(ld, val, "'%s' must be at most %s%s", f->key, bound, f->note ? f->note : "");
        return false;
    }
    return true;
}

static bool integer(struct load *ld, const struct field *f, const struct ynode *val,
                    uint64_t typemax, uint64_t *v)
{
    uint64_t max = f->max ? f->max : typemax;
    const char *s = cfg_text(ld, f->key, val, "an integer");

    if (!s)
        return false;
    if (cfg_parse_uint(s, max, v) || *v < f->min) {
        cfg_report(ld, val, "'%s' must be an integer %" PRIu64 "..%" PRIu64 "%s", f->key, f->min,
                   max, f->note ? f->note : "");
        return false;
    }
    return true;
}

void cfg_conv_u32(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    uint64_t v;

    if (integer(ld, f, val, UINT32_MAX, &v))
        *CFG_AT(base, f, uint32_t) = (uint32_t)v;
}

void cfg_conv_int(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    uint64_t v;

    if (integer(ld, f, val, INT_MAX, &v))
        *CFG_AT(base, f, int) = (int)v;
}

static bool size(struct load *ld, const struct field *f, const struct ynode *val, uint64_t typemax,
                 uint64_t *v)
{
    const char *s = cfg_text(ld, f->key, val, "a size");

    if (!s)
        return false;
    if (config_parse_size(s, v)) {
        cfg_report(ld, val, "'%s' must be a size like 8192, 64k or 1m", f->key);
        return false;
    }
    return in_range(ld, f, val, *v, f->max ? f->max : typemax, fmt_size);
}

void cfg_conv_size32(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    uint64_t v;

    if (size(ld, f, val, UINT32_MAX, &v))
        *CFG_AT(base, f, uint32_t) = (uint32_t)v;
}

void cfg_conv_size64(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    uint64_t v;

    if (size(ld, f, val, UINT64_MAX, &v))
        *CFG_AT(base, f, uint64_t) = v;
}

void cfg_conv_duration(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    const char *s = cfg_text(ld, f->key, val, "a duration");
    uint32_t ms;

    if (!s)
        return;
    if (config_parse_duration(s, &ms)) {
        cfg_report(ld, val, "'%s' must be a duration like 250ms, 5s, 2m, 1h or 1d (under 49d)",
                   f->key);
        return;
    }
    if (in_range(ld, f, val, ms, f->max ? f->max : UINT32_MAX, fmt_ms))
        *CFG_AT(base, f, uint32_t) = ms;
}

/* YAML 1.2 core schema booleans only: yes/no/on/off are YAML 1.1 surprises. */
void cfg_conv_bool(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False",
                                                                              "FALSE"};
    const char *s = cfg_text(ld, f->key, val, "true or false");

    if (!s)
        return;
    for (size_t i = 0; i < 3; i++) {
        if (!strcmp(s, yes[i]) || !strcmp(s, no[i])) {
            *CFG_AT(base, f, bool) = !strcmp(s, yes[i]);
            return;
        }
    }
    cfg_report(ld, val, "'%s' must be true or false", f->key);
}

/* Strings end up in logs, and URLs and content types in response headers: control characters
 * (CR and LF above all) could split a header, so they are refused. */
void cfg_conv_text(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    bool nospace = f->flags & F_NOSPACE;
    const char *s = cfg_text(ld, f->key, val, "a string");

    if (!s)
        return;
    if (!*s) {
        cfg_report(ld, val, "'%s' must not be empty", f->key);
        return;
    }
    if (!cfg_printable(s, !nospace)) {
        cfg_report(ld, val, "'%s' must not contain %scontrol characters", f->key,
                   nospace ? "spaces or " : "");
        return;
    }
    *CFG_AT(base, f, char *) = cfg_strdup(ld, s, val->len);
}

static int choose(struct load *ld, const struct field *f, const struct ynode *val)
{
    char list[160] = "";
    const char *s = cfg_text(ld, f->key, val, "a name");

    if (!s)
        return -1;
    for (int i = 0; f->names[i]; i++) {
        if (!strcmp(s, f->names[i]))
            return i;
    }
    for (int i = 0; f->names[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, f->names[i], sizeof list - strlen(list) - 1);
    }
    cfg_report(ld, val, "'%s' must be one of %s", f->key, list);
    return -1;
}

/* The enums of config.h have no negative values, so they are int-sized: see the assertion. */
_Static_assert(sizeof(enum cfg_log_level) == sizeof(int), "enum fields are stored as int");

void cfg_conv_enum(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    int i = choose(ld, f, val);

    if (i >= 0)
        *CFG_AT(base, f, int) = i;
}

/* An integer from a fixed set written in f->names, e.g. redirect status codes. The names are
 * the field table's, not the user's: one that is not a number is a bug in the table. */
void cfg_conv_choice(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    int i = choose(ld, f, val);
    uint64_t v = 0;

    if (i < 0)
        return;
    GH_BUG_ON(cfg_parse_uint(f->names[i], INT_MAX, &v) != 0);
    *CFG_AT(base, f, int) = (int)v;
}

void cfg_conv_map(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    char what[80], where[80];

    snprintf(what, sizeof what, "'%s'", f->key);
    snprintf(where, sizeof where, "in '%s'", f->key);
    if (cfg_want(ld, what, val, YNODE_MAP))
        cfg_walk(ld, val, val, f->sub, (char *)base + f->offset, where);
}

bool cfg_addr(struct load *ld, const char *key, const struct ynode *val, struct cfg_addr *out)
{
    char why[320];
    const char *s = cfg_text(ld, key, val, "an address like 127.0.0.1:8080");

    if (!s)
        return false;
    if (cfg_resolve_addr(s, ld->opts->resolver, &out->sa, &out->len, why, sizeof why)) {
        cfg_report(ld, val, "bad address '%.64s' (%s)", s, why);
        return false;
    }
    out->text = cfg_strdup(ld, s, val->len);
    return out->text != NULL;
}
