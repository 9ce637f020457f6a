/* YAML text -> ynode tree, built from libyaml's event stream.
 *
 * We build our own tree rather than use libyaml's document API so that the schema code never
 * sees a yaml_* type, and so that aliases can be bounded: an alias is the anchored node itself
 * (shared, not copied), and what aliases would expand to is capped, which defuses "billion
 * laughs" documents before the schema walk multiplies them. The walk copies every scalar it
 * keeps, once per reference, so both the nodes and the bytes of an expansion are capped: a
 * node count alone let one 1 MiB scalar, named 400 times, cost 400 MiB. */
#include "config/config_yaml.h"
#include "core/bug.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum {
    MAX_DEPTH = 64,        /* the schema is 5 levels deep; 64 is a mistake or an attack */
    MAX_ANCHORS = 1024,    /* bounds the linear anchor lookup */
    ALIAS_BUDGET = 100000, /* nodes that aliases may add to the document when expanded */
    MAX_ALIASES = 1000, /* a config shares a few blocks, it does not name them thousands of times */
};

/* Scalar bytes of the whole document with aliases expanded: what the schema walk may copy.
 * As large as the largest file config_load reads, so any file without aliases fits. */
#define TEXT_BUDGET ((size_t)16 << 20)

struct anchor {
    char *name;
    struct ynode *node;
};

struct builder {
    struct ydoc *doc;
    struct yerror *err;
    struct ynode *stack[MAX_DEPTH]; /* open maps and lists */
    char *stack_anchor[MAX_DEPTH];  /* their anchors, registered when they close */
    size_t depth;
    struct anchor *anchors;
    size_t nanchors;
    size_t expanded; /* nodes added by aliases so far */
    size_t text;     /* scalar bytes so far, aliases expanded */
    size_t naliases;
    int ndocs;
};

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

__attribute__((format(printf, 3, 4))) static int fail(struct builder *b, const yaml_mark_t *m,
                                                      const char *fmt, ...)
{
    va_list ap;

    b->err->line = (int)m->line + 1;
    b->err->col = (int)m->column + 1;
    va_start(ap, fmt);
    vsnprintf(b->err->msg, sizeof b->err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static struct ynode *node_new(struct builder *b, enum ynode_kind kind, const yaml_mark_t *m)
{
    struct ydoc *d = b->doc;
    struct ynode *n;

    if (d->nnodes == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        struct ynode **nodes = realloc(d->nodes, cap * sizeof *nodes);
        if (!nodes)
            return NULL;
        d->nodes = nodes;
        d->cap = cap;
    }
    n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    d->nodes[d->nnodes++] = n;
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    n->weight = 1;
    return n;
}

/* Appends a finished node to the open container, or makes it the root. Item arrays grow in
 * powers of two, so a new array is due exactly when the count is 0 or a power of two >= 4. */
static int attach(struct builder *b, struct ynode *n, const yaml_mark_t *m)
{
    struct ynode *parent;
    size_t k;

    if (b->depth == 0) {
        b->doc->root = n;
        return 0;
    }
    parent = b->stack[b->depth - 1];
    k = parent->nitems;
    if (k == 0 || (k >= 4 && (k & (k - 1)) == 0)) {
        struct ynode **items = realloc(parent->items, (k ? k * 2 : 4) * sizeof *items);
        if (!items)
            return fail(b, m, "out of memory");
        parent->items = items;
    }
    parent->items[parent->nitems++] = n;
    parent->weight = sat_add(parent->weight, n->weight);
    parent->bytes = sat_add(parent->bytes, n->bytes);
    return 0;
}

static int anchor_add(struct builder *b, char *name, struct ynode *n, const yaml_mark_t *m)
{
    if (!b->anchors) {
        b->anchors = calloc(MAX_ANCHORS, sizeof *b->anchors);
        if (!b->anchors) {
            free(name);
            return fail(b, m, "out of memory");
        }
    }
    if (b->nanchors == MAX_ANCHORS) {
        free(name);
        return fail(b, m, "too many anchors (at most %d)", MAX_ANCHORS);
    }
    b->anchors[b->nanchors].name = name;
    b->anchors[b->nanchors].node = n;
    b->nanchors++;
    return 0;
}

static char *dup_anchor(const yaml_char_t *anchor)
{
    return anchor ? strdup((const char *)anchor) : NULL;
}

static bool plain_null(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* Counts `bytes` more scalar text in the document; fails past TEXT_BUDGET. */
static int text_add(struct builder *b, size_t bytes, const yaml_mark_t *m)
{
    b->text = sat_add(b->text, bytes);
    if (b->text > TEXT_BUDGET)
        return fail(b, m, "values expand to more than %zu MiB with aliases", TEXT_BUDGET >> 20);
    return 0;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    size_t len = ev->data.scalar.length;
    struct ynode *n;

    if (text_add(b, len, &ev->start_mark))
        return -1;
    n = node_new(b, YNODE_SCALAR, &ev->start_mark);
    if (!n || !(n->text = malloc(len + 1)))
        return fail(b, &ev->start_mark, "out of memory");
    memcpy(n->text, ev->data.scalar.value, len);
    n->text[len] = '\0';
    n->len = len;
    n->bytes = len;
    n->is_null = plain_null(ev);
    if (ev->data.scalar.anchor) {
        char *name = dup_anchor(ev->data.scalar.anchor);
        if (!name)
            return fail(b, &ev->start_mark, "out of memory");
        if (anchor_add(b, name, n, &ev->start_mark))
            return -1;
    }
    return attach(b, n, &ev->start_mark);
}

/* A later anchor of the same name wins (YAML allows redefinition), hence the backward search.
 * Containers register their anchor only when they close, so a node cannot contain itself. */
static int on_alias(struct builder *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;

    if (++b->naliases > MAX_ALIASES)
        return fail(b, &ev->start_mark, "more than %d aliases", MAX_ALIASES);
    for (size_t i = b->nanchors; i-- > 0;) {
        struct ynode *n = b->anchors[i].node;
        if (strcmp(b->anchors[i].name, name) != 0)
            continue;
        b->expanded = sat_add(b->expanded, n->weight);
        if (b->expanded > ALIAS_BUDGET)
            return fail(b, &ev->start_mark, "aliases expand to more than %d nodes", ALIAS_BUDGET);
        if (text_add(b, n->bytes, &ev->start_mark))
            return -1;
        return attach(b, n, &ev->start_mark);
    }
    return fail(b, &ev->start_mark, "undefined alias '%.64s'", name);
}

static int on_open(struct builder *b, enum ynode_kind kind, const yaml_char_t *anchor,
                   const yaml_mark_t *m)
{
    struct ynode *n;

    if (b->depth == MAX_DEPTH)
        return fail(b, m, "nesting deeper than %d levels", MAX_DEPTH);
    n = node_new(b, kind, m);
    if (!n)
        return fail(b, m, "out of memory");
    b->stack_anchor[b->depth] = dup_anchor(anchor);
    if (anchor && !b->stack_anchor[b->depth])
        return fail(b, m, "out of memory");
    b->stack[b->depth++] = n;
    return 0;
}

static int on_close(struct builder *b, const yaml_mark_t *m)
{
    GH_BUG_ON(b->depth == 0); /* libyaml pairs every end event with its start */
    struct ynode *n = b->stack[--b->depth];
    char *anchor = b->stack_anchor[b->depth];

    b->stack_anchor[b->depth] = NULL;
    if (anchor && anchor_add(b, anchor, n, m))
        return -1;
    return attach(b, n, m);
}

static int on_event(struct builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1)
            return fail(b, &ev->start_mark, "only one YAML document is allowed");
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_open(b, YNODE_LIST, ev->data.sequence_start.anchor, &ev->start_mark);
    case YAML_MAPPING_START_EVENT:
        return on_open(b, YNODE_MAP, ev->data.mapping_start.anchor, &ev->start_mark);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_close(b, &ev->start_mark);
    default:
        return 0;
    }
}

/* Reader errors (bad UTF-8, control characters) carry a byte offset instead of a mark. Columns
 * count characters, as libyaml's marks do, so continuation bytes are skipped. */
static yaml_mark_t offset_mark(const char *text, size_t len, size_t offset)
{
    yaml_mark_t m = {0};

    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            m.column++;
        }
    }
    return m;
}

static int syntax_error(struct builder *b, const yaml_parser_t *p, const char *text, size_t len)
{
    const char *problem = p->problem ? p->problem : "syntax error";
    yaml_mark_t m;

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return fail(b, &p->mark, "out of memory");
    case YAML_READER_ERROR:
        m = offset_mark(text, len, p->problem_offset);
        if (p->problem_value != -1)
            return fail(b, &m, "%s (0x%X)", problem, (unsigned)p->problem_value);
        return fail(b, &m, "%s", problem);
    default:
        if (p->context)
            return fail(b, &p->problem_mark, "%s (%s that started at line %zu, column %zu)",
                        problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
        return fail(b, &p->problem_mark, "%s", problem);
    }
}

static void builder_free(struct builder *b)
{
    for (size_t i = 0; i < b->nanchors; i++)
        free(b->anchors[i].name);
    free(b->anchors);
    for (size_t i = 0; i < b->depth; i++)
        free(b->stack_anchor[i]);
}

int ydoc_parse(struct ydoc *doc, const char *text, size_t len, struct yerror *err)
{
    struct builder b = {.doc = doc, .err = err};
    yaml_parser_t parser;
    bool done = false;
    int rc = 0;

    memset(doc, 0, sizeof *doc);
    if (!yaml_parser_initialize(&parser)) {
        *err = (struct yerror){.line = 1, .col = 1, .msg = "out of memory"};
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(&b, &parser, text, len);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    builder_free(&b);
    if (rc)
        ydoc_free(doc);
    return rc;
}

void ydoc_free(struct ydoc *doc)
{
    for (size_t i = 0; i < doc->nnodes; i++) {
        free(doc->nodes[i]->text);
        free(doc->nodes[i]->items);
        free(doc->nodes[i]);
    }
    free(doc->nodes);
    memset(doc, 0, sizeof *doc);
}
