/* Directory listings (HTML or JSON) for the files handler; see files_listing.h. Not on the hot
 * path: a listing allocates its entries and its page with malloc and frees them before it
 * returns (the page itself is the caller's). */
#include "serve/files_listing.h"

#include "core/httpdate.h"
#include "http/token.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum fl_type { FL_DIR, FL_FILE, FL_LINK };

struct fl_entry {
    char *name;
    size_t name_len;
    enum fl_type type;
    uint64_t size;
    int64_t mtime;
};

struct fl_list {
    struct fl_entry *v;
    size_t n, cap;
    bool truncated;
};

/* ---- output buffer ---- */

struct fl_buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void fl_reserve(struct fl_buf *b, size_t more)
{
    if (b->oom || b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void fl_put(struct fl_buf *b, const char *s, size_t n)
{
    fl_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void fl_puts(struct fl_buf *b, const char *s)
{
    fl_put(b, s, strlen(s));
}

static void fl_putc(struct fl_buf *b, char c)
{
    fl_put(b, &c, 1);
}

/* ---- UTF-8 ---- */

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 if the bytes there are not one. */
static size_t fl_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

static const char fl_replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* ---- escaping ---- */

/* HTML text and attribute values (always double-quoted here); invalid UTF-8 -> U+FFFD and
 * control characters -> U+FFFD too (a newline in a name must not break the page's layout). */
static void fl_html(struct fl_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = fl_utf8_len(u + i, n - i);
        if (l == 0 || u[i] < 0x20 || u[i] == 0x7F) {
            fl_put(b, fl_replacement, 3);
            i++;
            continue;
        }
        switch (u[i]) {
        case '&':
            fl_puts(b, "&amp;");
            break;
        case '<':
            fl_puts(b, "&lt;");
            break;
        case '>':
            fl_puts(b, "&gt;");
            break;
        case '"':
            fl_puts(b, "&quot;");
            break;
        case '\'':
            fl_puts(b, "&#39;");
            break;
        default:
            fl_put(b, s + i, l);
            break;
        }
        i += l;
    }
}

static bool fl_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* A path segment for an href: every byte but the unreserved ones as %XX (so the result needs
 * no HTML escaping, and a name such as "a:b" or "?x" stays a relative path segment). */
static void fl_pct(struct fl_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (fl_unreserved(c)) {
            fl_putc(b, (char)c);
            continue;
        }
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        fl_put(b, e, 3);
    }
}

/* A JSON string's contents (RFC 8259): quote, backslash, control characters, DEL and < > &
 * escaped (the last three so that the body cannot be read as markup by anything that sniffs);
 * invalid UTF-8 -> \uFFFD. */
static void fl_json(struct fl_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = fl_utf8_len(u + i, n - i);
        unsigned char c = u[i];
        if (l == 0) {
            fl_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            fl_put(b, e, 2);
        } else if (c < 0x20 || c == 0x7F || c == '<' || c == '>' || c == '&') {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            fl_put(b, e, 6);
        } else {
            fl_put(b, s + i, l);
        }
        i += l;
    }
}

/* ---- reading the directory ---- */

static void fl_list_free(struct fl_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int fl_list_add(struct fl_list *l, const char *name, const struct stat *st)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct fl_entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    struct fl_entry *e = &l->v[l->n];
    e->name_len = strlen(name);
    e->name = malloc(e->name_len + 1);
    if (!e->name)
        return -1;
    memcpy(e->name, name, e->name_len + 1);
    e->type = S_ISDIR(st->st_mode) ? FL_DIR : S_ISLNK(st->st_mode) ? FL_LINK : FL_FILE;
    e->size = (uint64_t)st->st_size;
    e->mtime = (int64_t)st->st_mtime;
    l->n++;
    return 0;
}

/* Whether an entry belongs in the listing; fills *st (never following a link). */
static bool fl_wanted(int dirfd, const char *name, bool show_hidden, struct stat *st)
{
    if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
        return false;
    if (name[0] == '.' && !show_hidden)
        return false;
    if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
        return false; /* gone since readdir, or not ours to see */
    return S_ISDIR(st->st_mode) || S_ISREG(st->st_mode) || S_ISLNK(st->st_mode);
}

/* Reads up to FILES_LISTING_MAX entries through a new open file description of the directory
 * (openat "."), so the caller's descriptor keeps its offset and stays open. */
static int fl_read(int dirfd, bool show_hidden, struct fl_list *l)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        const struct dirent *de = readdir(d);
        if (!de) {
            rc = errno ? -1 : 0;
            break;
        }
        struct stat st;
        if (!fl_wanted(fd, de->d_name, show_hidden, &st))
            continue;
        if (l->n == FILES_LISTING_MAX) {
            l->truncated = true;
            break;
        }
        if (fl_list_add(l, de->d_name, &st) != 0) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
    }
    int e = errno;
    closedir(d);
    errno = e;
    return rc;
}

static int fl_cmp(const void *a, const void *b)
{
    const struct fl_entry *x = a, *y = b;
    if ((x->type == FL_DIR) != (y->type == FL_DIR))
        return x->type == FL_DIR ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ---- rendering ---- */

static const char *fl_type_name(enum fl_type t)
{
    return t == FL_DIR ? "dir" : t == FL_LINK ? "link" : "file";
}

static void fl_render_json(struct fl_buf *b, const struct fl_list *l)
{
    char num[32], date[HTTPDATE_LEN + 1];
    fl_putc(b, '[');
    for (size_t i = 0; i < l->n; i++) {
        const struct fl_entry *e = &l->v[i];
        fl_puts(b, i ? ",\n{\"name\":\"" : "\n{\"name\":\"");
        fl_json(b, e->name, e->name_len);
        fl_puts(b, "\",\"type\":\"");
        fl_puts(b, fl_type_name(e->type));
        fl_putc(b, '"');
        if (e->type == FL_FILE) {
            int n = snprintf(num, sizeof(num), ",\"size\":%" PRIu64, e->size);
            fl_put(b, num, (size_t)n);
        }
        httpdate_format(e->mtime, date);
        fl_puts(b, ",\"mtime\":\"");
        fl_put(b, date, HTTPDATE_LEN);
        fl_puts(b, "\"}");
    }
    fl_puts(b, l->n ? "\n]\n" : "]\n");
}

static const char fl_style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "h1{font-size:1.2em;word-break:break-all}"
    "table{border-collapse:collapse}"
    "td,th{padding:.15em 1.2em .15em 0;text-align:left;vertical-align:top}"
    "td.s{text-align:right;font-variant-numeric:tabular-nums}"
    "a{text-decoration:none}a:hover{text-decoration:underline}"
    ".note{color:#a00}";

static void fl_html_row(struct fl_buf *b, const struct fl_entry *e)
{
    char num[32], date[HTTPDATE_LEN + 1];
    fl_puts(b, "<tr><td><a href=\"./");
    fl_pct(b, e->name, e->name_len);
    if (e->type == FL_DIR)
        fl_putc(b, '/');
    fl_puts(b, "\">");
    fl_html(b, e->name, e->name_len);
    fl_puts(b, e->type == FL_DIR ? "/" : e->type == FL_LINK ? " @" : "");
    fl_puts(b, "</a></td><td class=\"s\">");
    if (e->type == FL_FILE) {
        int n = snprintf(num, sizeof(num), "%" PRIu64, e->size);
        fl_put(b, num, (size_t)n);
    } else {
        fl_putc(b, '-');
    }
    httpdate_format(e->mtime, date);
    fl_puts(b, "</td><td>");
    fl_put(b, date, HTTPDATE_LEN);
    fl_puts(b, "</td></tr>\n");
}

static void fl_render_html(struct fl_buf *b, const struct fl_list *l, const char *url,
                           size_t url_len)
{
    fl_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width\">\n<title>Index of ");
    fl_html(b, url, url_len);
    fl_puts(b, "</title>\n<style>");
    fl_puts(b, fl_style);
    fl_puts(b, "</style></head>\n<body>\n<h1>Index of ");
    fl_html(b, url, url_len);
    fl_puts(b, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n");
    if (!(url_len == 1 && url[0] == '/'))
        fl_puts(b, "<tr><td><a href=\"../\">../</a></td><td class=\"s\">-</td><td></td></tr>\n");
    for (size_t i = 0; i < l->n; i++)
        fl_html_row(b, &l->v[i]);
    fl_puts(b, "</table>\n");
    if (l->truncated) {
        char note[96];
        int n = snprintf(note, sizeof(note),
                         "<p class=\"note\">Truncated: only the first %d entries are listed.</p>\n",
                         FILES_LISTING_MAX);
        fl_put(b, note, (size_t)n);
    }
    fl_puts(b, "</body></html>\n");
}

int files_listing_render(int dirfd, const char *url_path, size_t url_len, bool json,
                         bool show_hidden, struct files_listing *out)
{
    memset(out, 0, sizeof(*out));
    struct fl_list l = {0};
    if (fl_read(dirfd, show_hidden, &l) != 0) {
        int e = errno;
        fl_list_free(&l);
        errno = e;
        return -1;
    }
    if (l.n > 1)
        qsort(l.v, l.n, sizeof(l.v[0]), fl_cmp);
    struct fl_buf b = {0};
    if (json)
        fl_render_json(&b, &l);
    else
        fl_render_html(&b, &l, url_path, url_len);
    bool truncated = l.truncated;
    fl_list_free(&l);
    if (b.oom) {
        free(b.p);
        errno = ENOMEM;
        return -1;
    }
    out->body = b.p;
    out->len = b.len;
    out->content_type = json ? "application/json" : "text/html; charset=utf-8";
    out->truncated = truncated;
    return 0;
}

/* ---- Accept ---- */

/* Specificity of the media range that matched: 0 none, 1 star/star, 2 type/star, 3 exact. */
struct fl_pref {
    int level;
    int q; /* thousandths, of the best range at `level` */
};

static bool fl_ows(char c)
{
    return c == ' ' || c == '\t';
}

static size_t fl_token_end(const char *s, size_t i, size_t end)
{
    while (i < end && (http_ctype[(unsigned char)s[i]] & HTTP_CT_TCHAR))
        i++;
    return i;
}

/* End of the member that starts at i: the next ',' outside a quoted-string. */
static size_t fl_member_end(const char *s, size_t i, size_t end)
{
    bool quoted = false;
    for (; i < end; i++) {
        if (quoted && s[i] == '\\' && i + 1 < end)
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && s[i] == ',')
            return i;
    }
    return end;
}

/* The q of a member's parameters s[i..end) (`*( OWS ";" OWS name "=" value )`): 1000 if none,
 * -1 if malformed. */
static int fl_params_q(const char *s, size_t i, size_t end)
{
    int q = 1000;
    for (;;) {
        while (i < end && fl_ows(s[i]))
            i++;
        if (i == end)
            return q;
        if (s[i++] != ';')
            return -1;
        while (i < end && fl_ows(s[i]))
            i++;
        size_t ne = fl_token_end(s, i, end);
        if (ne == i || ne == end || s[ne] != '=')
            return -1;
        bool is_q = ne - i == 1 && (s[i] == 'q' || s[i] == 'Q');
        size_t vs = ne + 1, ve;
        if (vs < end && s[vs] == '"') {
            ve = vs + 1;
            while (ve < end && s[ve] != '"')
                ve += s[ve] == '\\' ? 2 : 1;
            if (ve >= end)
                return -1;
            ve++;
        } else {
            ve = fl_token_end(s, vs, end);
        }
        if (is_q && (q = http_token_qvalue(s + vs, ve - vs)) < 0)
            return -1;
        i = ve;
    }
}

/* Applies one member's range to the preference of type/subtype `want_type`/`want_sub`. */
static void fl_match(struct fl_pref *p, const char *t, size_t tl, const char *st, size_t stl, int q,
                     const char *want_type, const char *want_sub)
{
    int level;
    bool t_star = tl == 1 && t[0] == '*', st_star = stl == 1 && st[0] == '*';
    if (t_star && st_star)
        level = 1;
    else if (t_star)
        return; /* "* / subtype" is not a valid range */
    else if (!http_token_eq(t, tl, want_type, strlen(want_type)))
        return;
    else if (st_star)
        level = 2;
    else if (http_token_eq(st, stl, want_sub, strlen(want_sub)))
        level = 3;
    else
        return;
    if (level > p->level || (level == p->level && q > p->q)) {
        p->level = level;
        p->q = q;
    }
}

bool files_listing_wants_json(const char *accept, size_t len)
{
    if (!accept)
        return false;
    struct fl_pref json = {0, 0}, html = {0, 0};
    for (size_t i = 0; i <= len;) {
        size_t end = fl_member_end(accept, i, len);
        size_t a = i;
        while (a < end && fl_ows(accept[a]))
            a++;
        size_t te = fl_token_end(accept, a, end);
        if (te > a && te < end && accept[te] == '/') {
            size_t ss = te + 1, se = fl_token_end(accept, ss, end);
            int q = se > ss ? fl_params_q(accept, se, end) : -1;
            if (q >= 0) {
                fl_match(&json, accept + a, te - a, accept + ss, se - ss, q, "application", "json");
                fl_match(&html, accept + a, te - a, accept + ss, se - ss, q, "text", "html");
            }
        }
        i = end + 1;
    }
    return json.q > html.q;
}
