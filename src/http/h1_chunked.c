/* Chunked transfer coding decoder (RFC 9112 section 7.1).
 *
 * A byte-at-a-time state machine for the framing (size lines, extensions, CRLFs, trailers),
 * which is a few bytes per chunk, and a direct hand-back of data spans, which is the bulk. It
 * keeps nothing of the input, so feed boundaries can fall anywhere, including inside a CRLF. */
#include "http/h1_parse.h"
#include "http/token.h"

enum {
    /* chunk-size [ chunk-ext ] up to its CR or LF */
    CS_SIZE_START,     /* first hex digit */
    CS_SIZE,           /* more hex digits */
    CS_WS_SEMI,        /* BWS after the size or an extension value: only ';' may follow */
    CS_EXT_NAME_START, /* after ';': BWS, then a token */
    CS_EXT_NAME,       /* in the extension name */
    CS_EXT_NAME_WS,    /* BWS after the name: '=' or ';' must follow */
    CS_EXT_VAL_START,  /* after '=': BWS, then a token or a quoted-string */
    CS_EXT_TOKEN,      /* in a token value */
    CS_EXT_QUOTED,     /* in a quoted-string value */
    CS_EXT_QPAIR,      /* after a backslash in a quoted-string */
    CS_EXT_QUOTE_END,  /* after the closing quote */
    CS_LAST_IN_LINE = CS_EXT_QUOTE_END,
    CS_SIZE_LF,       /* size line CR seen */
    CS_DATA,          /* `remaining` data bytes to hand out */
    CS_DATA_END,      /* CRLF after the data */
    CS_DATA_LF,       /* its LF */
    CS_TRAILER_START, /* start of a trailer line, or of the final empty line */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_FINAL_LF,
    CS_END,
    CS_ERROR,
};

#define DEFAULT_MAX_LINE 4096
#define DEFAULT_MAX_TRAILER 16384

void h1_chunked_init(struct h1_chunked *c)
{
    *c = (struct h1_chunked){.state = CS_SIZE_START};
}

static inline bool is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

static inline bool is_tchar(unsigned char ch)
{
    return http_ctype[ch] & HTTP_CT_TCHAR;
}

static int to(struct h1_chunked *c, int state)
{
    c->state = state;
    return 0;
}

/* Adds a hex digit to the chunk size; sizes of 2^63 and more are refused so that no consumer
 * has to worry about signed lengths. */
static int size_digit(struct h1_chunked *c, unsigned char ch)
{
    if (!(http_ctype[ch] & HTTP_CT_HEX))
        return -1;
    if (c->remaining >> 59)
        return -1;
    unsigned d = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
    c->remaining = c->remaining << 4 | d;
    return to(c, CS_SIZE);
}

/* After a complete size or extension value: more extensions or the end of the line. */
static int after_value(struct h1_chunked *c, unsigned char ch)
{
    if (ch == ';')
        return to(c, CS_EXT_NAME_START);
    if (is_ws(ch))
        return to(c, CS_WS_SEMI);
    return -1;
}

/* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
static int quoted_byte(struct h1_chunked *c, unsigned char ch)
{
    if (ch == '"')
        return to(c, CS_EXT_QUOTE_END);
    if (ch == '\\')
        return to(c, CS_EXT_QPAIR);
    return http_ctype[ch] & HTTP_CT_FIELD ? 0 : -1;
}

/* One byte of a size line other than its CR/LF. */
static int size_line_byte(struct h1_chunked *c, unsigned char ch)
{
    switch (c->state) {
    case CS_SIZE_START:
        return size_digit(c, ch);
    case CS_SIZE:
        return http_ctype[ch] & HTTP_CT_HEX ? size_digit(c, ch) : after_value(c, ch);
    case CS_WS_SEMI:
        return is_ws(ch) ? 0 : ch == ';' ? to(c, CS_EXT_NAME_START) : -1;
    case CS_EXT_NAME_START:
        return is_ws(ch) ? 0 : is_tchar(ch) ? to(c, CS_EXT_NAME) : -1;
    case CS_EXT_NAME:
        if (is_tchar(ch))
            return 0;
        if (ch == '=')
            return to(c, CS_EXT_VAL_START);
        if (ch == ';')
            return to(c, CS_EXT_NAME_START);
        return is_ws(ch) ? to(c, CS_EXT_NAME_WS) : -1;
    case CS_EXT_NAME_WS:
        if (is_ws(ch))
            return 0;
        if (ch == '=')
            return to(c, CS_EXT_VAL_START);
        return ch == ';' ? to(c, CS_EXT_NAME_START) : -1;
    case CS_EXT_VAL_START:
        if (is_ws(ch))
            return 0;
        if (ch == '"')
            return to(c, CS_EXT_QUOTED);
        return is_tchar(ch) ? to(c, CS_EXT_TOKEN) : -1;
    case CS_EXT_TOKEN:
        return is_tchar(ch) ? 0 : after_value(c, ch);
    case CS_EXT_QUOTED:
        return quoted_byte(c, ch);
    case CS_EXT_QPAIR: /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        return http_ctype[ch] & HTTP_CT_FIELD ? to(c, CS_EXT_QUOTED) : -1;
    default: /* CS_EXT_QUOTE_END */
        return after_value(c, ch);
    }
}

/* The size line ended: data follows, or the trailer section after the last chunk. */
static int size_line_done(struct h1_chunked *c)
{
    c->line_len = 0;
    if (c->remaining)
        return to(c, CS_DATA);
    c->trailer_len = 0;
    return to(c, CS_TRAILER_START);
}

/* A size line may end only where a complete size or extension ends. */
static int size_line_end(struct h1_chunked *c, unsigned char ch)
{
    int s = c->state;
    if (s != CS_SIZE && s != CS_EXT_NAME && s != CS_EXT_TOKEN && s != CS_EXT_QUOTE_END)
        return -1;
    if (ch == '\r')
        return to(c, CS_SIZE_LF);
    return c->crlf_only ? -1 : size_line_done(c);
}

static int size_line(struct h1_chunked *c, unsigned char ch)
{
    if (ch == '\r' || ch == '\n')
        return size_line_end(c, ch);
    uint32_t max = c->max_line ? c->max_line : DEFAULT_MAX_LINE;
    if (++c->line_len > max)
        return -1;
    return size_line_byte(c, ch);
}

/* Trailer field lines are checked like header lines (token name, colon, field bytes, no
 * obs-fold), counted against max_trailer, and dropped. */
static int trailer(struct h1_chunked *c, unsigned char ch)
{
    uint32_t max = c->max_trailer ? c->max_trailer : DEFAULT_MAX_TRAILER;
    if (++c->trailer_len > max)
        return -1;
    switch (c->state) {
    case CS_TRAILER_START:
        if (ch == '\r')
            return to(c, CS_FINAL_LF);
        if (ch == '\n')
            return c->crlf_only ? -1 : to(c, CS_END);
        return is_tchar(ch) ? to(c, CS_TRAILER_NAME) : -1;
    case CS_TRAILER_NAME:
        if (is_tchar(ch))
            return 0;
        return ch == ':' ? to(c, CS_TRAILER_VALUE) : -1;
    case CS_TRAILER_VALUE:
        if (ch == '\r')
            return to(c, CS_TRAILER_LF);
        if (ch == '\n')
            return c->crlf_only ? -1 : to(c, CS_TRAILER_START);
        return http_ctype[ch] & HTTP_CT_FIELD ? 0 : -1;
    case CS_TRAILER_LF:
        return ch == '\n' ? to(c, CS_TRAILER_START) : -1;
    default: /* CS_FINAL_LF */
        return ch == '\n' ? to(c, CS_END) : -1;
    }
}

/* One framing byte. Returns 0, or -1 if the byte is invalid where it is. */
static int step(struct h1_chunked *c, unsigned char ch)
{
    switch (c->state) {
    case CS_SIZE_LF:
        return ch == '\n' ? size_line_done(c) : -1;
    case CS_DATA_END:
        if (ch == '\r')
            return to(c, CS_DATA_LF);
        return ch == '\n' && !c->crlf_only ? to(c, CS_SIZE_START) : -1;
    case CS_DATA_LF:
        return ch == '\n' ? to(c, CS_SIZE_START) : -1;
    default:
        return c->state <= CS_LAST_IN_LINE ? size_line(c, ch) : trailer(c, ch);
    }
}

/* Hands out as much of the current chunk as the input holds, starting at in + off. */
static int data_span(struct h1_chunked *c, const char *in, size_t off, size_t len, size_t *consumed,
                     const char **data, size_t *data_len)
{
    size_t n = len - off;
    if (n > c->remaining)
        n = (size_t)c->remaining;
    c->remaining -= n;
    if (c->remaining == 0)
        c->state = CS_DATA_END;
    *data = in + off;
    *data_len = n;
    *consumed = off + n;
    return H1_CHUNK_DATA;
}

/* On error, *consumed is the offset of the offending byte; the decoder stays in error. After
 * the end, further calls return H1_CHUNK_END and consume nothing. */
int h1_chunked_decode(struct h1_chunked *c, const char *in, size_t len, size_t *consumed,
                      const char **data, size_t *data_len)
{
    *data = NULL;
    *data_len = 0;
    *consumed = 0;
    if (c->state == CS_ERROR)
        return H1_CHUNK_ERROR;
    if (c->state == CS_END)
        return H1_CHUNK_END;
    for (size_t i = 0; i < len; i++) {
        if (c->state == CS_DATA)
            return data_span(c, in, i, len, consumed, data, data_len);
        if (step(c, (unsigned char)in[i]) < 0) {
            c->state = CS_ERROR;
            *consumed = i;
            return H1_CHUNK_ERROR;
        }
        if (c->state == CS_END) {
            *consumed = i + 1;
            return H1_CHUNK_END;
        }
    }
    *consumed = len;
    return H1_CHUNK_AGAIN;
}
