/* HTTP-date formatting and parsing; see httpdate.h. Calendar arithmetic on the proleptic
 * Gregorian calendar (Howard Hinnant's days_from_civil / civil_from_days). */
#include "core/httpdate.h"

#include <string.h>

static const char wday_names[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char *const wday_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                         "Friday", "Saturday", "Sunday"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

#define MIN_T (-62167219200LL) /* 0000-01-01T00:00:00Z */
#define MAX_T (253402300799LL) /* 9999-12-31T23:59:59Z */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static char *put2(char *p, unsigned v)
{
    *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

size_t httpdate_format(int64_t t, char out[HTTPDATE_LEN + 1])
{
    if (t < MIN_T)
        t = MIN_T;
    if (t > MAX_T)
        t = MAX_T;
    int64_t days = floor_div(t, 86400), y;
    unsigned secs = (unsigned)(t - days * 86400), m, d;
    civil_from_days(days, &y, &m, &d);
    char *p = out;
    memcpy(p, wday_names[(unsigned)(((days % 7) + 7) % 7)], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p = put2(p, d);
    *p++ = ' ';
    memcpy(p, month_names[m - 1], 3);
    p += 3;
    *p++ = ' ';
    p = put2(p, (unsigned)(y / 100));
    p = put2(p, (unsigned)(y % 100));
    *p++ = ' ';
    p = put2(p, secs / 3600);
    *p++ = ':';
    p = put2(p, secs / 60 % 60);
    *p++ = ':';
    p = put2(p, secs % 60);
    memcpy(p, " GMT", 5);
    return HTTPDATE_LEN;
}

/* A cursor over the field value; every reader fails (returns false) past the end. */
struct cur {
    const char *p, *end;
};

static bool lit(struct cur *c, const char *s, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool digits(struct cur *c, unsigned n, unsigned *v)
{
    if ((size_t)(c->end - c->p) < n)
        return false;
    unsigned x = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)c->p[i];
        if (ch < '0' || ch > '9')
            return false;
        x = x * 10 + (ch - '0');
    }
    c->p += n;
    *v = x;
    return true;
}

static bool month(struct cur *c, unsigned *m)
{
    for (unsigned i = 0; i < 12; i++)
        if (lit(c, month_names[i], 3)) {
            *m = i + 1;
            return true;
        }
    return false;
}

static bool day_name(struct cur *c)
{
    for (unsigned i = 0; i < 7; i++)
        if (lit(c, wday_names[i], 3))
            return true;
    return false;
}

static bool day_name_long(struct cur *c)
{
    for (unsigned i = 0; i < 7; i++)
        if (lit(c, wday_long[i], strlen(wday_long[i])))
            return true;
    return false;
}

/* time-of-day = hour ":" minute ":" second; second 60 is a leap second (RFC 9110 5.6.7). */
static bool time_of_day(struct cur *c, unsigned *secs)
{
    unsigned h, mi, s;
    if (!digits(c, 2, &h) || !lit(c, ":", 1) || !digits(c, 2, &mi) || !lit(c, ":", 1) ||
        !digits(c, 2, &s) || h > 23 || mi > 59 || s > 60)
        return false;
    *secs = h * 3600 + mi * 60 + s;
    return true;
}

static bool valid_day(int64_t y, unsigned m, unsigned d)
{
    static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

/* Sun, 06 Nov 1994 08:49:37 GMT */
static bool parse_imf(struct cur *c, int64_t *y, unsigned *m, unsigned *d, unsigned *secs)
{
    unsigned yy;
    if (!day_name(c) || !lit(c, ", ", 2) || !digits(c, 2, d) || !lit(c, " ", 1) || !month(c, m) ||
        !lit(c, " ", 1) || !digits(c, 4, &yy) || !lit(c, " ", 1) || !time_of_day(c, secs) ||
        !lit(c, " GMT", 4))
        return false;
    *y = yy;
    return true;
}

/* Sunday, 06-Nov-94 08:49:37 GMT */
static bool parse_rfc850(struct cur *c, int64_t now, int64_t *y, unsigned *m, unsigned *d,
                         unsigned *secs)
{
    unsigned yy;
    if (!day_name_long(c) || !lit(c, ", ", 2) || !digits(c, 2, d) || !lit(c, "-", 1) ||
        !month(c, m) || !lit(c, "-", 1) || !digits(c, 2, &yy) || !lit(c, " ", 1) ||
        !time_of_day(c, secs) || !lit(c, " GMT", 4))
        return false;
    int64_t ny;
    unsigned nm, nd;
    civil_from_days(floor_div(now, 86400), &ny, &nm, &nd);
    int64_t year = ny - ((ny % 100) + 100) % 100 + yy; /* same century as now */
    if (year > ny + 50)
        year -= 100;
    else if (year + 100 <= ny + 50)
        year += 100;
    *y = year;
    return true;
}

/* Sun Nov  6 08:49:37 1994 (the day is space-padded, 2DIGIT / ( SP 1DIGIT )) */
static bool parse_asctime(struct cur *c, int64_t *y, unsigned *m, unsigned *d, unsigned *secs)
{
    unsigned yy;
    if (!day_name(c) || !lit(c, " ", 1) || !month(c, m) || !lit(c, " ", 1))
        return false;
    if (lit(c, " ", 1)) {
        if (!digits(c, 1, d))
            return false;
    } else if (!digits(c, 2, d)) {
        return false;
    }
    if (!lit(c, " ", 1) || !time_of_day(c, secs) || !lit(c, " ", 1) || !digits(c, 4, &yy))
        return false;
    *y = yy;
    return true;
}

static bool ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

bool httpdate_parse(const char *s, size_t len, int64_t now, int64_t *out)
{
    while (len && ows(s[0]))
        s++, len--;
    while (len && ows(s[len - 1]))
        len--;
    int64_t y = 0;
    unsigned m = 0, d = 0, secs = 0;
    struct cur c = {s, s + len};
    bool ok = len >= 4 && s[3] == ','   ? parse_imf(&c, &y, &m, &d, &secs)
              : len >= 4 && s[3] == ' ' ? parse_asctime(&c, &y, &m, &d, &secs)
                                        : parse_rfc850(&c, now, &y, &m, &d, &secs);
    if (!ok || c.p != c.end || !valid_day(y, m, d))
        return false;
    *out = days_from_civil(y, m, d) * 86400 + secs;
    return true;
}
