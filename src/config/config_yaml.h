/* YAML text -> a small tree of nodes that remember where they were written. This is the only
 * part of the config module that sees libyaml: the schema code walks these nodes, so libyaml's
 * types stay here and every message can carry a line and column. */
#ifndef GH_CONFIG_YAML_H
#define GH_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>

enum ynode_kind { YNODE_SCALAR, YNODE_MAP, YNODE_LIST };

struct ynode {
    enum ynode_kind kind;
    int line, col;        /* 1-based position of the node's first character */
    bool is_null;         /* plain (unquoted) scalar: empty, "~", "null", "Null" or "NULL" */
    char *text;           /* scalar: NUL-terminated, but escapes ("\0") may embed NULs: see len */
    size_t len;           /* scalar text length */
    struct ynode **items; /* list: the items; map: key, value, key, value, ... */
    size_t nitems;        /* list: items; map: twice the number of pairs */
    size_t weight;        /* nodes in this subtree with aliases expanded (saturates) */
    size_t bytes;         /* scalar bytes in this subtree with aliases expanded (saturates) */
};

/* A parsed document. An alias is the node its anchor names (shared, not copied), so the tree
 * is a DAG: free it with ydoc_free, never node by node. */
struct ydoc {
    struct ynode *root; /* NULL when the stream holds no document (empty file, comments only) */
    struct ynode **nodes;
    size_t nnodes, cap;
};

struct yerror {
    int line, col; /* 1-based */
    char msg[256];
};

/* Parses `len` bytes of YAML (one document at most). Returns 0 on success, or -1 with `err`
 * filled in on a syntax error, an unsupported construct, memory exhaustion, or a document too
 * large once aliases are expanded (more than 1000 aliases, 100000 nodes added by aliases, or
 * 16 MiB of scalar text in all); `doc` then holds nothing that needs freeing. */
int ydoc_parse(struct ydoc *doc, const char *text, size_t len, struct yerror *err);
void ydoc_free(struct ydoc *doc);

#endif
