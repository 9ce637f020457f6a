/* Configuration: YAML file -> validated, immutable, reference-counted snapshot.
 * A snapshot is built once by config_load, shared read-only by every worker, and freed when
 * the last holder drops it (after a reload, requests in flight finish on the old snapshot). */
#ifndef GH_CONFIG_H
#define GH_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

enum cfg_log_format { CFG_LOG_COMBINED, CFG_LOG_JSON };
enum cfg_log_level { CFG_LOG_DEBUG, CFG_LOG_INFO, CFG_LOG_WARN, CFG_LOG_ERROR };

struct cfg_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char *text; /* as written in the config, e.g. "127.0.0.1:9090" or "[::1]:80"; for an
                 * upstream server written as a host name, that and the address it stands for:
                 * "app.internal:5000@10.0.0.5" (logs, /status, the server's identity) */
    char *host; /* upstream servers: the address as written, "app.internal:5000" (== text for a
                 * literal address): what Host headers and TLS server names are made of */
};

/* An address block for trusted_proxies: "10.0.0.0/8", "::1/128", or a bare address (/32, /128). */
struct cfg_cidr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* network address, 4 or 16 bytes used, host bits zero */
    uint8_t prefix;    /* 0..32 or 0..128 */
};

/* add: appended (existing fields kept); set: replaces every field of that name (added if absent);
 * remove: deleted. Names are matched case-insensitively and kept as written for output. */
struct cfg_header_op {
    char *name;
    char *value;
    size_t name_len, value_len;
};

struct cfg_header_rules {
    struct cfg_header_op *add, *set;
    size_t nadd, nset;
    char **remove;
    size_t nremove;
};

/* Forwarding headers a proxied route sends (bit set = sent). */
enum {
    CFG_FWD_FOR = 1 << 0,       /* X-Forwarded-For */
    CFG_FWD_PROTO = 1 << 1,     /* X-Forwarded-Proto */
    CFG_FWD_HOST = 1 << 2,      /* X-Forwarded-Host */
    CFG_FWD_PORT = 1 << 3,      /* X-Forwarded-Port */
    CFG_FWD_FORWARDED = 1 << 4, /* Forwarded (RFC 7239) */
    CFG_FWD_ALL = 31,
};

enum cfg_host_header { CFG_HOST_CLIENT, CFG_HOST_UPSTREAM };

struct cfg_logs {
    char *access; /* file path; NULL when `off`; "-" for stdout */
    enum cfg_log_format format;
    char *error; /* file path, or "-" for stderr */
    enum cfg_log_level level;
};

/* HTTP/2 connection limits (key `limits.http2`), announced to the client in our SETTINGS. */
struct cfg_http2 {
    uint32_t max_concurrent_streams; /* default 128; more open streams are refused */
    /* Bytes of one decoded field block, counted as RFC 9113 section 6.5.2 does (name + value +
     * 32 per field), default 65536. A larger block is an attack, not an oversized request: GOAWAY
     * ENHANCE_YOUR_CALM. Never below max_header_size, which answers 431 within it. */
    uint32_t max_header_list_size;
    uint32_t stream_window;     /* bytes, default 65535: request body buffered per stream */
    uint32_t connection_window; /* bytes, default 1 MiB: request body buffered per connection */
};

struct cfg_limits {
    uint32_t max_request_line;            /* bytes, default 8192 -> 414 */
    uint32_t max_header_size;             /* whole head, default 32768 -> 431 */
    uint32_t max_header_count;            /* default 100 -> 431 */
    uint32_t client_header_timeout;       /* ms, default 10000 -> 408 */
    uint32_t client_body_timeout;         /* ms, default 30000 -> 408 */
    uint32_t send_timeout;                /* ms, default 60000: client not reading our response */
    uint32_t keepalive_timeout;           /* ms, default 75000 */
    uint32_t max_requests_per_connection; /* default 10000 */
    uint32_t max_connections_per_worker;  /* default 10000 */
    uint64_t max_body_size;               /* bytes, default 0 = unlimited -> 413 */
    uint32_t max_connections_per_client;  /* per client address per worker, 0 = no limit */
    struct cfg_http2 http2;
};

/* How an upstream spreads requests over its servers (key `balance`). */
enum cfg_balance {
    CFG_BAL_ROUND_ROBIN,
    CFG_BAL_LEAST_REQUESTS,
    CFG_BAL_POWER_OF_TWO,
    CFG_BAL_HASH
};
/* What balance: hash hashes (key `hash_key`). */
enum cfg_hash_by { CFG_HASH_CLIENT_IP, CFG_HASH_PATH, CFG_HASH_HEADER, CFG_HASH_COOKIE };

#define CFG_MAX_SERVERS 256 /* per upstream: a retry's tried-set is a fixed bitmap */

/* Per-server settings, parallel to cfg_upstream.servers. */
struct cfg_server_policy {
    uint32_t weight;    /* 1..1000, default 1 */
    uint32_t max_conns; /* requests in flight at once, all workers together; 0 = no limit */
    bool backup;        /* used only when no other server is usable */
    bool drain;         /* no new clients: only requests whose sticky cookie names it */
};

/* Active health checks (key `health_check`). */
struct cfg_health_check {
    bool enabled;                                               /* the key is present */
    enum cfg_check_type { CFG_CHECK_HTTP, CFG_CHECK_TCP } type; /* tcp: connect only */
    char *method, *path;                                        /* default GET / */
    char *host;          /* Host of the check request; NULL: the server's address */
    uint32_t status_min; /* expected status range, default 200-399 */
    uint32_t status_max;
    uint32_t interval;   /* ms, default 5000 */
    uint32_t timeout;    /* ms, default 2000 */
    uint32_t rise, fall; /* results in a row that change the state, default 2 and 3 */
};

/* Passive health, outlier ejection (key `passive_health`). */
#define CFG_PASSIVE_STATUS_MIN 400
#define CFG_PASSIVE_STATUS_MAX 599
struct cfg_passive_health {
    uint32_t failures; /* consecutive failures that eject a server; 0 = never; default 5 */
    uint32_t eject;    /* ms, first ejection; each next one doubles, up to 10x; default 30s */
    /* Response statuses that count as failures (key `statuses`), one bit per status from
     * CFG_PASSIVE_STATUS_MIN; default 500, 502, 503, 504. */
    uint64_t statuses[(CFG_PASSIVE_STATUS_MAX - CFG_PASSIVE_STATUS_MIN) / 64 + 1];
    bool statuses_set; /* the key was written (else the default applies) */
};

/* Whether passive health counts a response with this status as a failure. */
static inline bool cfg_passive_status(const struct cfg_passive_health *ph, int status)
{
    if (status < CFG_PASSIVE_STATUS_MIN || status > CFG_PASSIVE_STATUS_MAX)
        return false;
    unsigned i = (unsigned)(status - CFG_PASSIVE_STATUS_MIN);
    return (ph->statuses[i / 64] >> (i % 64)) & 1;
}

/* An upstream server written as a host name: it became one server per address the name had,
 * servers[first .. first + n), in a stable order (IPv4 before IPv6, then by address). */
struct cfg_server_name {
    char *name;    /* the host name alone: "app.internal" */
    char *written; /* the address as written: "app.internal:5000" (the servers' `host`) */
    size_t first, n;
};

struct upstate;

struct cfg_upstream {
    char *name;
    size_t index; /* position in config->upstreams */
    struct cfg_addr *servers;
    size_t nservers;
    struct cfg_server_name *names; /* the servers written as host names, in file order */
    size_t nnames;
    uint32_t resolve_interval;   /* ms between lookups of those names, default 30000; 0 = never */
    uint32_t connect_timeout;    /* ms, default 5000 -> 502 */
    uint32_t read_timeout;       /* ms, default 60000; between response bytes -> 504 */
    uint32_t send_timeout;       /* ms, default 60000; upstream not reading request */
    uint32_t keepalive;          /* idle pooled connections per worker, default 32; 0 = none */
    uint32_t keepalive_timeout;  /* ms an idle pooled connection is kept, default 30000 */
    uint32_t keepalive_requests; /* requests per upstream connection, default 1000 */
    /* secret_header: { name: X-Gatehouse-Secret, value: "..." }; NULL when absent. Added to
     * every request to this upstream (replacing any such field from the client). */
    char *secret_name, *secret_value;
    /* tls: `true` or a map: TLS to the servers. tls_client is the client context, built at load
     * and freed with the snapshot; NULL: plain TCP. tls_ca NULL: the system store;
     * tls_server_name NULL: the host part of each server's address; tls_cert and tls_key: the
     * optional client certificate; tls_verify: check the server's certificate (default true). */
    struct tls_client *tls_client;
    char *tls_ca, *tls_server_name, *tls_cert, *tls_key;
    bool tls_verify;
    /* Upgraded connections (WebSocket): closed after this long without a byte either way. */
    uint32_t tunnel_idle_timeout; /* ms, default 3600000 */
    /* Balancing, health and retries. */
    struct cfg_server_policy *policies; /* one per server */
    enum cfg_balance balance;           /* default round_robin */
    enum cfg_hash_by hash_by;           /* balance: hash; default client_ip */
    char *hash_name;                    /* header or cookie name for hash_by HEADER / COOKIE */
    size_t hash_name_len;
    uint32_t retries;       /* further servers tried after a failed attempt; default 2 */
    uint32_t retry_timeout; /* ms after the first attempt in which a retry may start; 10s */
    uint32_t retry_budget;  /* retries as a percentage of recent requests; default 20 */
    uint32_t slow_start;    /* ms over which a returning server ramps up to its weight; 0 = off */
    struct cfg_health_check health_check;
    struct cfg_passive_health passive_health;
    /* sticky: { cookie: NAME }: a client returns to the server that answered it first, named
     * in a cookie Gatehouse sets with a random token per server (never its address). */
    char *sticky_cookie; /* NULL: no stickiness */
    size_t sticky_cookie_len;
    /* queue: { size, timeout }: requests wait this long for a server under max_conns. */
    uint32_t queue_size;    /* all workers together; 0 = no queue (503 at once) */
    uint32_t queue_timeout; /* ms, default 5000 */
    /* Run-time state shared by the workers (proxy/upstate.h), built by upstate_attach when the
     * snapshot goes live and freed with it; NULL in a snapshot only checked (gatehouse -t). */
    struct upstate *state;
};

enum cfg_action { CFG_ACTION_PROXY, CFG_ACTION_REDIRECT, CFG_ACTION_RESPOND, CFG_ACTION_FILES };

/* A `files` route (config_files.c; docs/files.md). */
enum cfg_follow { CFG_FOLLOW_INSIDE_ROOT, CFG_FOLLOW_ALWAYS, CFG_FOLLOW_NEVER };
#define CFG_FILES_CODINGS 3 /* br, zstd, gzip */
struct mime_table;
struct cfg_files {
    char *root;  /* as resolved (a relative one from the config file's directory) */
    int root_fd; /* O_PATH|O_DIRECTORY of root, opened at load, closed with the snapshot */
    uint64_t root_dev, root_ino; /* root's identity: keys the open-file cache across reloads */
    char **index;                /* file names tried in a directory, default [index.html] */
    size_t nindex;
    bool listing;        /* directory listing when no index (default false) */
    bool hidden;         /* serve names starting with '.' (default false: 404) */
    int follow_symlinks; /* enum cfg_follow, default inside_root */
    char *fallback;      /* path under root without its leading '/', for a missing file; NULL */
    size_t fallback_len;
    uint8_t precompressed[CFG_FILES_CODINGS]; /* enum encoder_kind values, preference order */
    size_t nprecompressed;
    char *cache_control;           /* Cache-Control value, or NULL */
    const struct mime_table *mime; /* the route's table: mime_own, else the snapshot's base */
    struct mime_table *mime_own;   /* built from mime_types, freed with the snapshot */
    struct cfg_files *next;        /* every files route of the snapshot (for freeing) */
};

/* Top-level `files_cache`: the per-worker open-file cache. */
struct cfg_files_cache {
    uint32_t entries; /* default 1024; 0 disables the cache */
    uint32_t valid;   /* ms, default 1000: older entries are revalidated with one stat */
};

/* Compression of responses (key `compress`, on a site or a route; config_compress.c). `true` is
 * every default, `false` is off (a route's turns its site's off). The codings are values of
 * enum encoder_kind (http/encoder.h), kept as ints so that config.h stays below http. */
#define CFG_COMPRESS_KINDS 4 /* enum encoder_kind's ENCODER_KIND_COUNT */
struct cfg_compress {
    bool on;
    int algorithms[CFG_COMPRESS_KINDS]; /* server preference; default zstd, br, gzip */
    size_t nalgorithms;
    int level[CFG_COMPRESS_KINDS]; /* by coding; defaults gzip 5, br 4, zstd 3 */
    uint64_t min_size;             /* bytes, default 1k; by Content-Length */
    const char *const *types;      /* media ranges: type/subtype, type/star, star/star */
    size_t ntypes;
};

struct cfg_route {
    char *path; /* prefix, starts with '/', no trailing '/' unless it is "/" */
    size_t path_len;
    enum cfg_action action;
    struct cfg_upstream *upstream; /* proxy */
    int status;                    /* redirect (default 302) and respond (default 200) */
    char *location;                /* redirect target (absolute URL or path) */
    bool append_path;              /* redirect: append the path after the prefix, and the query */
    char *body;                    /* respond body, may be NULL */
    size_t body_len;
    char *content_type; /* respond, default "text/plain; charset=utf-8" */
    /* Proxy routes. */
    bool strip_prefix;                /* default false; sends X-Forwarded-Prefix when true */
    unsigned forward_headers;         /* CFG_FWD_* bits; key forward_headers, default ALL */
    enum cfg_host_header host_header; /* default CFG_HOST_CLIENT */
    bool rewrite_responses;           /* key rewrite_responses, default true */
    char **rewrite_names;             /* extra internal origins, e.g. "http://jenkins:8080" */
    size_t nrewrite_names;
    uint64_t max_body_size;                   /* 0 = limits.max_body_size applies */
    const struct cfg_compress *compress;      /* NULL: the site's; else replaces it */
    struct cfg_header_rules request_headers;  /* to the upstream */
    struct cfg_header_rules response_headers; /* to the client, after the site's */
    struct cfg_files *files;                  /* files routes */
};

struct cfg_site {
    char *name;   /* optional; defaults to the first host */
    char **hosts; /* lowercased; "*.example.com" wildcards kept as written */
    size_t nhosts;
    struct cfg_route *routes; /* sorted by path_len, longest first */
    size_t nroutes;
    bool is_default; /* key `default`: answers hosts no site matches (one at most) */
    struct cfg_header_rules response_headers; /* every response of the site */
    char *hsts; /* Strict-Transport-Security value on HTTPS responses (key `hsts`), or NULL */
    bool case_insensitive_paths; /* route prefixes ignore ASCII case (key of that name) */
    const struct cfg_compress *compress; /* NULL: no compression (or a route's) */
};

/* A listener's TLS settings (key `tls:`). The certificates are loaded and checked when the
 * configuration is loaded; `server` is the ready OpenSSL context, owned by the snapshot. */
struct cfg_tls_cert {
    char *cert; /* PEM certificate chain file */
    char *key;  /* PEM private key file */
    char *ocsp; /* DER OCSP response stapled for this certificate (key `ocsp`), or NULL */
};

struct tls_server;

struct cfg_tls {
    struct cfg_tls_cert *certs; /* the first is the default for unknown or missing SNI */
    size_t ncerts;
    int min_version;            /* 0x0303 (TLS 1.2, default) or 0x0304 (TLS 1.3) */
    char *ciphers;              /* TLS 1.2 cipher list; default Mozilla intermediate */
    char *ciphersuites;         /* TLS 1.3 suites; default OpenSSL's */
    uint32_t handshake_timeout; /* ms, default 10000 */
    bool http2;                 /* offer h2 by ALPN (key `http2`), default true */
    struct tls_server *server;  /* built at load; freed with the snapshot */
    /* Client certificates (mTLS): PEM CA certificates clients must chain to (key `client_ca`);
     * NULL: none asked for. */
    char *client_ca;
    /* The request header the proxy sets to the verified client's subject (RFC 2253) when
     * client_ca is set, after removing any the client sent (key `client_subject_header`,
     * default "X-Client-Subject"). */
    char *client_subject_header;
    /* Session ticket keys: a 80- or 48-byte key file in nginx's format shared by instances
     * (key `session_ticket_key`), or NULL: random keys made at load and replaced every
     * session_ticket_rotation ms (default 12h), the previous one still accepted. */
    char *session_ticket_key;
    uint32_t session_ticket_rotation;
};

struct cfg_listener {
    struct cfg_addr addr; /* port 0 = pick a free port */
    int backlog;          /* default 511 */
    struct cfg_tls *tls;  /* NULL: plain TCP */
    bool h2c;             /* plain listener: also accept HTTP/2 with prior knowledge (key `h2c`) */
    bool redirect_to_https; /* plain listener: answer everything with 308 to the HTTPS listener */
    bool admin; /* the `admin` listener: serves the status endpoint (serve/admin.h), no sites */
    /* sites: [name, ...]: the sites this listener serves; NULL/0 = all of them. */
    struct cfg_site **sites;
    size_t nsites;
    /* The admin listener's `hosts`: the names it answers besides IP literals (lowercased). */
    char **admin_hosts;
    size_t nadmin_hosts;
};

struct config {
    atomic_int refs;
    char *path;              /* the file it came from */
    char *source;            /* the YAML text it was built from (host names are re-resolved */
    size_t source_len;       /* by building again from it, not from the file, see resolve.h) */
    int workers;             /* resolved: `auto` -> number of online CPUs */
    uint32_t shutdown_grace; /* ms, default 30000 (key `shutdown_timeout`) */
    struct cfg_logs logs;
    struct cfg_limits limits;
    struct cfg_listener *listeners; /* those of `listen`, then the admin one if any */
    size_t nlisteners;
    struct cfg_listener *admin; /* key `admin: { address }`: the last of listeners, or NULL */
    struct cfg_upstream *upstreams;
    size_t nupstreams;
    struct cfg_site *sites;
    size_t nsites;
    struct cfg_cidr *trusted_proxies; /* peers whose forwarding headers are kept and extended */
    size_t ntrusted_proxies;
    struct cfg_files_cache files_cache;
    struct cfg_files *files;      /* list of every files route's settings (cfg_files.next) */
    struct mime_table *mime_base; /* built-in types + /etc/mime.types, when a route serves files */
};

/* Whether `sa` lies in one of the blocks (IPv4-mapped IPv6 addresses match IPv4 blocks). */
bool config_cidr_match(const struct cfg_cidr *blocks, size_t n, const struct sockaddr *sa);

/* How a load looks up host names (never a numeric address, "*" or "localhost", which are
 * handled without it): every address of `host`, in the resolver's order, into out[0 .. max);
 * *n gets how many. Returns 0, or an EAI_* code for gai_strerror. The default (a NULL resolver)
 * is getaddrinfo; tests and fuzzers pass their own to stay off the network. */
struct config_resolver {
    int (*lookup)(void *ctx, const char *host, struct sockaddr_storage *out, size_t max, size_t *n);
    void *ctx;
};

struct resolve_round;

/* What a load takes besides the text. A NULL pointer, or zero fields, mean the defaults. */
struct config_load_opts {
    const struct config_resolver *resolver; /* NULL: the system's (getaddrinfo) */
    /* The answers for the host names of upstream servers, taken instead of looking them up:
     * set by resolve_round_build (config/resolve.h). NULL: every name is looked up. */
    const struct resolve_round *answers;
};

/* Parse and validate `path`. On success returns 0 and stores a snapshot with one reference in
 * *out. On failure returns the number of problems found (> 0) after printing each one to
 * `errs` as "FILE:LINE:COL: message\n"; *out is left NULL. Every problem is reported, not just
 * the first. I/O errors are reported as "FILE: message". Host names are looked up with
 * getaddrinfo; config_load_with takes the resolver (and answers) as `opts`. */
int config_load(const char *path, struct config **out, FILE *errs);
int config_load_with(const char *path, const struct config_load_opts *opts, struct config **out,
                     FILE *errs);

/* Same, from an in-memory YAML document; `name` is used in messages. */
int config_load_string(const char *name, const char *yaml, size_t len, struct config **out,
                       FILE *errs);
int config_load_string_with(const char *name, const char *yaml, size_t len,
                            const struct config_load_opts *opts, struct config **out, FILE *errs);

void config_ref(struct config *c);
void config_unref(struct config *c); /* frees on the last reference */

/* Helpers shared with other modules. */
/* "5s", "250ms", "2m", "1h", bare integer = seconds -> ms. Returns 0 on success. */
int config_parse_duration(const char *s, uint32_t *ms);
/* "100", "64k", "10m", "1g" (powers of 1024) -> bytes. Returns 0 on success. */
int config_parse_size(const char *s, uint64_t *bytes);
/* "1.2.3.4:80", "[::1]:80", "*:80" / ":80" (any IPv4), "localhost:80"; a host name is looked
 * up with `resolver` (NULL: getaddrinfo) and gives its first address. Returns 0 on success. */
int config_parse_addr(const char *s, const struct config_resolver *resolver, struct cfg_addr *out);

/* config_parse_addr's out->text is a malloc'd copy of `s`: release it with this. Addresses in a
 * snapshot belong to the snapshot and must not be passed here. */
void config_addr_free(struct cfg_addr *a);

#endif
