/* Arena, problem reports and the table-driven walker (see config_walk.h). */
#include "config/config_walk.h"
#include "config/config_values.h"

#include <inttypes.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

enum { CHUNK_SIZE = 16384, ALIGN = alignof(max_align_t) };

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
};

void *arena_alloc(struct arena *a, size_t size)
{
    struct arena_chunk *c = a->head;

    if (size > SIZE_MAX / 2)
        return NULL;
    size = size ? (size + ALIGN - 1) & ~(size_t)(ALIGN - 1) : ALIGN;
    if (!c || c->size - c->used < size) {
        size_t cap = size > CHUNK_SIZE ? size : CHUNK_SIZE;
        c = calloc(1, sizeof *c + cap);
        if (!c)
            return NULL;
        c->size = cap;
        c->next = a->head;
        a->head = c;
    }
    c->used += size;
    return c->data + c->used - size;
}

void arena_free(struct arena *a)
{
    while (a->head) {
        struct arena_chunk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* ---- problems ---- */

struct problem {
    int line, col;
    size_t seq;
    char *msg;
};

/* Messages quote what the user wrote, which may hold newlines or escape sequences: those
 * would break the one-problem-per-line format, so control characters become '?'. */
static void sanitize(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    }
}

void cfg_report(struct load *ld, const struct ynode *at, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    struct problem *p;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sanitize(buf);
    if (ld->nproblems == ld->cap) {
        size_t cap = ld->cap ? ld->cap * 2 : 16;
        p = realloc(ld->problems, cap * sizeof *p);
        if (!p) {
            ld->oom = true;
            return;
        }
        ld->problems = p;
        ld->cap = cap;
    }
    p = &ld->problems[ld->nproblems];
    p->msg = arena_alloc(&ld->scratch, strlen(buf) + 1);
    if (!p->msg) {
        ld->oom = true;
        return;
    }
    strcpy(p->msg, buf);
    p->line = at ? at->line : 1;
    p->col = at ? at->col : 1;
    p->seq = ld->nproblems++;
}

static int problem_cmp(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    int d;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    d = strcmp(x->msg, y->msg);
    if (d)
        return d;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A node reached through several aliases is checked once per path, so identical problems at
 * one position are printed once. Messages are sorted within a position so that duplicates
 * meet. */
int cfg_load_end(struct load *ld, FILE *errs)
{
    int count = 0;

    if (ld->nproblems)
        qsort(ld->problems, ld->nproblems, sizeof *ld->problems, problem_cmp);
    for (size_t i = 0; i < ld->nproblems; i++) {
        const struct problem *p = &ld->problems[i];
        if (i > 0 && p->line == p[-1].line && p->col == p[-1].col && !strcmp(p->msg, p[-1].msg))
            continue;
        count++;
        if (errs)
            fprintf(errs, "%s:%d:%d: %s\n", ld->name, p->line, p->col, p->msg);
    }
    if (ld->oom) {
        count++;
        if (errs)
            fprintf(errs, "%s: out of memory\n", ld->name);
    }
    free(ld->problems);
    ld->problems = NULL;
    ld->nproblems = ld->cap = 0;
    arena_free(&ld->scratch);
    return count;
}

/* ---- memory ---- */

static void *checked(struct load *ld, void *p)
{
    if (!p)
        ld->oom = true;
    return p;
}

void *cfg_alloc(struct load *ld, size_t size)
{
    return checked(ld, arena_alloc(ld->mem, size));
}

void *cfg_scratch(struct load *ld, size_t size)
{
    return checked(ld, arena_alloc(&ld->scratch, size));
}

char *cfg_strdup(struct load *ld, const char *s, size_t len)
{
    char *d = cfg_alloc(ld, len + 1);

    if (d)
        memcpy(d, s, len);
    return d;
}

/* ---- walking ---- */

static size_t find_field(const struct fields *fs, const struct ynode *key)
{
    for (size_t i = 0; i < fs->n; i++) {
        if (strlen(fs->v[i].key) == key->len && !memcmp(fs->v[i].key, key->text, key->len))
            return i;
    }
    return fs->n;
}

void cfg_match(struct load *ld, const struct ynode *map, const struct fields *fs,
               const struct ynode **vals, const char *where)
{
    bool seen[CFG_MAX_FIELDS] = {false};

    for (size_t i = 0; i + 1 < map->nitems; i += 2) {
        const struct ynode *key = map->items[i];
        size_t j;

        if (key->kind != YNODE_SCALAR) {
            cfg_report(ld, key, "a key must be a name, not a %s",
                       key->kind == YNODE_MAP ? "map" : "list");
            continue;
        }
        j = find_field(fs, key);
        if (j == fs->n) {
            cfg_report(ld, key, "unknown key '%.64s' %s", key->text, where);
        } else if (seen[j]) {
            cfg_report(ld, key, "duplicate key '%s' %s", fs->v[j].key, where);
        } else {
            seen[j] = true;
            vals[j] = map->items[i + 1];
        }
    }
}

void cfg_apply(struct load *ld, const struct field *f, const struct ynode *val,
               const struct ynode *at, void *base, const char *where)
{
    struct ynode dflt;

    if (val && val->is_null) {
        if (f->flags & F_REQUIRED) {
            cfg_report(ld, val, "'%s' needs a value", f->key);
            return;
        }
        val = NULL; /* an empty value means the default, as if the key were absent */
    }
    if (!val && (f->flags & F_REQUIRED)) {
        cfg_report(ld, at, "missing required key '%s' %s", f->key, where);
        return;
    }
    if (!val && f->sub) {
        cfg_walk(ld, NULL, at, f->sub, (char *)base + f->offset, where);
        return;
    }
    if (!val && !f->dflt)
        return;
    if (!val) {
        /* Defaults go through the converter, so a default and the same text written in the
         * file cannot disagree. Position 0:0 would betray a bad default in a table. */
        dflt = (struct ynode){
            .kind = YNODE_SCALAR, .text = (char *)f->dflt, .len = strlen(f->dflt), .weight = 1};
        val = &dflt;
    }
    f->conv(ld, f, val, base);
}

void cfg_walk(struct load *ld, const struct ynode *map, const struct ynode *at,
              const struct fields *fs, void *base, const char *where)
{
    const struct ynode *vals[CFG_MAX_FIELDS] = {NULL};

    if (map) {
        cfg_match(ld, map, fs, vals, where);
        at = map;
    }
    for (size_t i = 0; i < fs->n; i++)
        cfg_apply(ld, &fs->v[i], vals[i], at, base, where);
}

/* ---- value checks ---- */

static const char *kind_name(enum ynode_kind kind)
{
    return kind == YNODE_MAP ? "a map" : kind == YNODE_LIST ? "a list" : "a string";
}

const char *cfg_text(struct load *ld, const char *key, const struct ynode *val, const char *want)
{
    if (val->kind != YNODE_SCALAR) {
        cfg_report(ld, val, "'%s' must be %s, not %s", key, want, kind_name(val->kind));
        return NULL;
    }
    if (strlen(val->text) != val->len) {
        cfg_report(ld, val, "'%s' must not contain NUL characters", key);
        return NULL;
    }
    return val->text;
}

bool cfg_want(struct load *ld, const char *what, const struct ynode *val, enum ynode_kind kind)
{
    if (val->kind == kind)
        return true;
    if (val->kind == YNODE_SCALAR)
        cfg_report(ld, val, "%s must be %s, not '%.64s'", what, kind_name(kind), val->text);
    else
        cfg_report(ld, val, "%s must be %s, not %s", what, kind_name(kind), kind_name(val->kind));
    return false;
}

const struct ynode *cfg_list(struct load *ld, const char *key, const struct ynode *val)
{
    char what[80];

    snprintf(what, sizeof what, "'%s'", key);
    if (!cfg_want(ld, what, val, YNODE_LIST))
        return NULL;
    if (val->nitems == 0) {
        cfg_report(ld, val, "'%s' must not be empty", key);
        return NULL;
    }
    return val;
}

bool cfg_printable(const char *s, bool space_ok)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || (c == ' ' && !space_ok))
            return false;
    }
    return true;
}

/* The first occurrence wins, as in cfg_match. */
const struct ynode *cfg_get(const struct ynode *map, const char *key)
{
    if (map->kind != YNODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->nitems; i += 2) {
        const struct ynode *k = map->items[i];
        if (k->kind == YNODE_SCALAR && !strcmp(k->text, key))
            return map->items[i + 1];
    }
    return NULL;
}

const char *cfg_peek(const struct ynode *map, const char *key)
{
    const struct ynode *v = cfg_get(map, key);

    return v && v->kind == YNODE_SCALAR && !v->is_null ? v->text : NULL;
}

/* ---- keys ---- */

static int key_bytes_cmp(const struct cfg_key *x, const struct cfg_key *y)
{
    int d = memcmp(x->data, y->data, x->len < y->len ? x->len : y->len);

    if (d)
        return d;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int key_cmp(const void *a, const void *b)
{
    const struct cfg_key *x = a, *y = b;
    int d = key_bytes_cmp(x, y);

    if (d)
        return d;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void cfg_sort_keys(struct cfg_key *keys, size_t n)
{
    if (n > 1)
        qsort(keys, n, sizeof *keys, key_cmp);
}

bool cfg_key_repeats(const struct cfg_key *keys, size_t i)
{
    return i > 0 && key_bytes_cmp(&keys[i], &keys[i - 1]) == 0;
}

static int key_find_cmp(const void *a, const void *b)
{
    return key_bytes_cmp(a, b);
}

const struct cfg_key *cfg_find_key(const struct cfg_key *keys, size_t n, const char *name)
{
    struct cfg_key k = {.data = name, .len = strlen(name)};

    return n ? bsearch(&k, keys, n, sizeof *keys, key_find_cmp) : NULL;
}
