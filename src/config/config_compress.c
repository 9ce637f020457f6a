/* `compress` on a site or a route: `true` (every default), `false` (off: a route's turns its
 * site's off) or a map { algorithms, min_size, types, level }. Codings and levels are checked
 * with the encoder's own names and limits (http/encoder.h), so the file cannot ask for a coding
 * or a level the response path would refuse at run time. */
#include "config/config_values.h"
#include "config/config_walk.h"
#include "http/encoder.h"

#include <ctype.h>
#include <string.h>

_Static_assert(CFG_COMPRESS_KINDS == ENCODER_KIND_COUNT, "cfg_compress arrays span the codings");

/* The level limits of a coding, from encoder_level_valid (levels are small: 0..22 at most). */
static void level_bounds(enum encoder_kind kind, int *lo, int *hi)
{
    *lo = -1;
    *hi = -1;
    for (int v = 0; v <= 32; v++) {
        if (!encoder_level_valid(kind, v))
            continue;
        if (*lo < 0)
            *lo = v;
        *hi = v;
    }
}

/* level.gzip / level.br / level.zstd: the key names the coding, the target is its slot. */
static void conv_level(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    enum encoder_kind kind = encoder_kind_parse(f->key, strlen(f->key));
    const char *s = cfg_text(ld, f->key, val, "a level");
    uint64_t v;
    int lo, hi;

    if (!s)
        return;
    level_bounds(kind, &lo, &hi);
    if (cfg_parse_uint(s, 100, &v) || !encoder_level_valid(kind, (int)v)) {
        cfg_report(ld, val, "'%s' level must be an integer %d..%d", f->key, lo, hi);
        return;
    }
    *CFG_AT(base, f, int) = (int)v;
}

static const struct field level_fields[] = {
    {.key = "gzip", .conv = conv_level, .offset = ENCODER_GZIP * sizeof(int), .dflt = "5"},
    {.key = "br", .conv = conv_level, .offset = ENCODER_BR * sizeof(int), .dflt = "4"},
    {.key = "zstd", .conv = conv_level, .offset = ENCODER_ZSTD * sizeof(int), .dflt = "3"},
};
static const struct fields level_table = FIELDS(level_fields);

/* Server preference among equal client weights. */
static void conv_algorithms(struct load *ld, const struct field *f, const struct ynode *val,
                            void *base)
{
    struct cfg_compress *c = base;
    const struct ynode *list = cfg_list(ld, f->key, val);

    if (!list)
        return;
    c->nalgorithms = 0;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        const char *s = cfg_text(ld, f->key, item, "a list of codings");
        enum encoder_kind k = s ? encoder_kind_parse(s, item->len) : ENCODER_KIND_COUNT;
        bool seen = false;

        if (!s)
            continue;
        if (k == ENCODER_KIND_COUNT || k == ENCODER_IDENTITY) {
            cfg_report(ld, item, "unknown algorithm '%.64s' (expected gzip, br or zstd)", s);
            continue;
        }
        for (size_t j = 0; j < c->nalgorithms; j++)
            seen |= c->algorithms[j] == (int)k;
        if (seen)
            cfg_report(ld, item, "algorithm '%.64s' is listed twice", s);
        else if (c->nalgorithms < CFG_COMPRESS_KINDS)
            c->algorithms[c->nalgorithms++] = (int)k;
    }
}

static bool media_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && !strchr("!#$&-^_.+", ch))
            return false;
    }
    return true;
}

/* "type/subtype", "type/" star or star-slash-star: RFC 9110 media ranges without parameters. */
static bool media_range(const char *s, size_t len)
{
    const char *slash = memchr(s, '/', len);
    size_t tn = slash ? (size_t)(slash - s) : 0, sn = slash ? len - tn - 1 : 0;

    if (!slash)
        return false;
    if (tn == 1 && s[0] == '*')
        return sn == 1 && slash[1] == '*';
    return media_token(s, tn) && ((sn == 1 && slash[1] == '*') || media_token(slash + 1, sn));
}

static void conv_types(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    struct cfg_compress *c = base;
    const struct ynode *list = cfg_list(ld, f->key, val);
    const char **types;

    if (!list || !(types = cfg_alloc(ld, list->nitems * sizeof *types)))
        return;
    c->types = types;
    c->ntypes = 0;
    for (size_t i = 0; i < list->nitems; i++) {
        const struct ynode *item = list->items[i];
        const char *s = cfg_text(ld, f->key, item, "a list of media types");
        char *t;

        if (!s)
            continue;
        if (!media_range(s, item->len)) {
            cfg_report(ld, item,
                       "bad media range '%.64s' in 'types' (expected type/subtype, type/* or "
                       "*/*, without parameters)",
                       s);
            continue;
        }
        if ((t = cfg_strdup(ld, s, item->len)))
            types[c->ntypes++] = t;
    }
}

/* What `compress: true` means: the types a browser benefits from compressing. Images other than
 * SVG, audio, video and archives are compressed already. */
static const char default_types[] = "[text/*, application/json, application/javascript, "
                                    "application/xml, image/svg+xml, application/wasm]";

static const struct field compress_fields[] = {
    {FIELD("algorithms", conv_algorithms, struct cfg_compress, algorithms, "[zstd, br, gzip]")},
    {FIELD("min_size", cfg_conv_size64, struct cfg_compress, min_size, "1k")},
    {FIELD("types", conv_types, struct cfg_compress, types, default_types)},
    {FIELD("level", cfg_conv_map, struct cfg_compress, level, NULL), .sub = &level_table},
};
static const struct fields compress_table = FIELDS(compress_fields);

/* Defaults are written as YAML flow lists; the walker hands them over as scalars. */
static void parse_default_list(struct load *ld, const struct field *f, struct cfg_compress *c)
{
    char buf[256];
    struct ynode items[8], *ptrs[8], list = {.kind = YNODE_LIST, .items = ptrs};
    size_t n = strlen(f->dflt);

    if (n < 2 || n >= sizeof buf)
        return;
    memcpy(buf, f->dflt + 1, n - 2); /* without the brackets */
    buf[n - 2] = '\0';
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok && list.nitems < 8;
         tok = strtok_r(NULL, ", ", &save)) {
        items[list.nitems] = (struct ynode){.kind = YNODE_SCALAR, .text = tok, .len = strlen(tok)};
        ptrs[list.nitems] = &items[list.nitems];
        list.nitems++;
    }
    f->conv(ld, f, &list, c);
}

static void compress_defaults(struct load *ld, struct cfg_compress *c, const struct ynode **vals)
{
    for (size_t i = 0; i < compress_table.n; i++) {
        const struct field *f = &compress_fields[i];
        bool absent = !vals[i] || vals[i]->is_null;
        if (absent && f->dflt && f->dflt[0] == '[')
            parse_default_list(ld, f, c);
        else
            cfg_apply(ld, f, vals[i], NULL, c, "in 'compress'");
    }
}

void cfg_conv_compress(struct load *ld, const struct field *f, const struct ynode *val, void *base)
{
    const struct cfg_compress **out = CFG_AT(base, f, const struct cfg_compress *);
    const struct ynode *vals[CFG_MAX_FIELDS] = {NULL};
    struct cfg_compress *c;

    if (val->kind == YNODE_LIST ||
        (val->kind == YNODE_SCALAR && strcmp(val->text, "true") && strcmp(val->text, "false"))) {
        cfg_report(ld, val, "'%s' must be true, false or a map", f->key);
        return;
    }
    if (!(c = cfg_alloc(ld, sizeof *c)))
        return;
    *out = c;
    if (val->kind == YNODE_SCALAR && !strcmp(val->text, "false"))
        return; /* c->on stays false */
    c->on = true;
    if (val->kind == YNODE_MAP)
        cfg_match(ld, val, &compress_table, vals, "in 'compress'");
    compress_defaults(ld, c, vals);
}
