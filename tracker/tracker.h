/* tracker: the one context of the tracker process.  main.c fills it from the
 * command line and owns its lifetime; the listeners (listen.c), the server
 * (server.h and the files behind it), the relay, the metrics, the registry
 * and the mailbox work on it, always passed explicitly. */
#ifndef PARLEY_TRACKER_H
#define PARLEY_TRACKER_H

#include "log.h"
#include "namemap.h"
#include "registry.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TRACKER_PORT "5960"
#define TRACKER_HELLO_MS 10000   /* first complete frame within this */
#define TRACKER_MAX_QUEUED (1u << 20) /* a client this far behind is dropped */
/* Connections the kernel may hold for accept (it caps this at
 * net.core.somaxconn).  After a restart every peer reconnects at once; a
 * connection that finds the queue full is retried by its TCP with a
 * doubling timeout (1 s, 2 s, 4 s...), which stretched a 10,000-peer
 * reconnect storm from seconds to half a minute with 511. */
#define TRACKER_BACKLOG 4096

typedef struct tracker_config {
    const char **listen; /* --listen HOST:PORT specs, in order */
    size_t nlisten;
    int default_listen;  /* no --listen given: IPv6 may be missing on this host */
    const char *db;
    const char *registry; /* --registry CONNINFO or --db URI: the users table in PostgreSQL, or NULL */
    int registry_file;    /* registry came from the config file (the command line's replaces it) */
    unsigned ttl;        /* seconds of silence before a client is dropped */
    unsigned relay_per_user;  /* relay sessions one user may be part of at once */
    unsigned relay_max;       /* relay sessions at once in total */
    uint64_t relay_rate;      /* bytes per second per session (both directions) */
    unsigned relay_idle;      /* seconds without a byte before a session closes */
    unsigned relay_join_ms;   /* for both sides to join after the request */
    const char *relay_addr;   /* --relay-addr HOST:PORT: where peers of other trackers join
                               * our relays; NULL: the address our user's connection reached */
    unsigned rate_limit;      /* frames per second per connection; 0: no limit */
    unsigned rate_burst;      /* frames a connection may send at once */
    unsigned max_per_addr;    /* connections from one IPv4 address or IPv6 /64; 0: no limit */
    unsigned max_conns;       /* control connections at once; 0: no limit */
    unsigned mail_ttl;        /* seconds a message (and a receipt) waits at most */
    uint64_t mail_max;        /* messages waiting per recipient */
    uint64_t mail_bytes;      /* bytes of boxes waiting per recipient */
    uint64_t mail_per_sender; /* messages of one sender waiting for one recipient */
    uint64_t mail_rate;       /* puts per sender per hour; 0: no limit */
    uint64_t mail_total;      /* bytes of boxes waiting in all */
    unsigned verify_threads;  /* register signatures checked on this many threads; 0: in the loop */
    const char *metrics;      /* --metrics HOST:PORT, or NULL: no metrics */
    const char *config;       /* --config PATH, or NULL */
    const char *release;      /* --release NAME: free that name and exit, or NULL */
    size_t nlisten_file;      /* listen specs from the config file (replaced by the command line's) */
} tracker_config;

/* What metrics.c serves; plain counters bumped where things happen. */
enum { STAT_REFUSED_MAX_CONNS, STAT_REFUSED_PER_ADDR, STAT_REFUSED_N };
enum { STAT_REJ_BAD_FRAME, STAT_REJ_BAD_MESSAGE, STAT_REJ_UNKNOWN_TYPE, STAT_REJ_RATE_LIMITED,
       STAT_REJ_TOO_BIG, STAT_REJ_N };
#define STAT_COMMIT_BUCKETS 12 /* metrics.c names the bounds */
enum { STAT_MAIL_FULL, STAT_MAIL_RATE, STAT_MAIL_REFUSED_N };
typedef struct tracker_stats {
    uint64_t registrations;            /* successful registrations */
    uint64_t lookups;                  /* lookup answers sent */
    uint64_t lists;                    /* list pages sent */
    uint64_t control_sent_closed;      /* bytes sent on control connections closed since */
    uint64_t relay_bytes;              /* bytes copied by relay sessions */
    uint64_t refused[STAT_REFUSED_N];  /* connections closed by a limit */
    uint64_t rejected[STAT_REJ_N];     /* frames refused, by reason */
    uint64_t commit_bucket[STAT_COMMIT_BUCKETS]; /* not cumulative; metrics.c sums */
    uint64_t commits;
    uint64_t commit_ns;                /* sum */
    uint64_t mail_stored;              /* new messages stored (not resends) */
    uint64_t mail_delivered;           /* acknowledged by their recipient */
    uint64_t mail_rejected;            /* acknowledged with ok false: refused by the recipient */
    uint64_t mail_expired;
    uint64_t mail_refused_limit[STAT_MAIL_REFUSED_N]; /* puts refused: mailbox_full, rate_limited */
} tracker_stats;

#define RATE_LIMIT_DEFAULT 50
#define RATE_BURST_DEFAULT 100
#define MAX_PER_ADDR_DEFAULT 32
#define MAX_CONNS_DEFAULT 10000

#define RELAY_PER_USER_DEFAULT 8
#define RELAY_MAX_DEFAULT 1024
#define RELAY_RATE_DEFAULT (1024 * 1024)
#define RELAY_IDLE_DEFAULT 300
#define RELAY_JOIN_MS 10000
#define RELAY_HIGH_WATER (256 * 1024) /* pause a reader while its peer has this much queued */
#define RELAY_READ_MAX (256 * 1024)   /* the largest read of a bulk relayed stream */

#define VERIFY_THREADS_DEFAULT 1

#define MAIL_TTL_DEFAULT (7 * 86400)
#define MAIL_MAX_DEFAULT 1000
#define MAIL_BYTES_DEFAULT (4u << 20)
#define MAIL_PER_SENDER_DEFAULT 100
#define MAIL_RATE_DEFAULT 300
#define MAIL_TOTAL_DEFAULT (1ull << 30)

/* The defaults every flag starts from (main.c, then the config file and the
 * command line; the fuzz harness uses them as they are). */
static inline void tracker_config_defaults(tracker_config *cfg) {
    cfg->db = "tracker.db";
    cfg->ttl = 60;
    cfg->relay_per_user = RELAY_PER_USER_DEFAULT;
    cfg->relay_max = RELAY_MAX_DEFAULT;
    cfg->relay_rate = RELAY_RATE_DEFAULT;
    cfg->relay_idle = RELAY_IDLE_DEFAULT;
    cfg->relay_join_ms = RELAY_JOIN_MS;
    cfg->rate_limit = RATE_LIMIT_DEFAULT;
    cfg->rate_burst = RATE_BURST_DEFAULT;
    cfg->max_per_addr = MAX_PER_ADDR_DEFAULT;
    cfg->max_conns = MAX_CONNS_DEFAULT;
    cfg->mail_ttl = MAIL_TTL_DEFAULT;
    cfg->mail_max = MAIL_MAX_DEFAULT;
    cfg->mail_bytes = MAIL_BYTES_DEFAULT;
    cfg->mail_per_sender = MAIL_PER_SENDER_DEFAULT;
    cfg->mail_rate = MAIL_RATE_DEFAULT;
    cfg->mail_total = MAIL_TOTAL_DEFAULT;
    cfg->verify_threads = VERIFY_THREADS_DEFAULT;
}

struct listener;
struct lsn_job;
struct session;
struct rsess;
struct mailbox;
struct mail_srv;
struct verifier;

typedef struct tracker_ctx {
    uv_loop_t *loop;
    logger lg;
    tracker_config cfg;
    registry *reg;
    struct mailbox *mbox;      /* the offline mail in reg's database (mailbox.h) */
    struct mail_srv *mail;     /* mail.c's pass state, rate buckets and sweep, or NULL */
    struct verifier *verifier; /* register signatures off the loop (verifier.h), or NULL: in it */
    namemap *online;            /* registered sessions by folded name */
    namemap *hosts;             /* session.c: connections per host (--max-conns-per-addr), or NULL */
    struct listener *listeners;
    struct lsn_job *resolving; /* listen specs being resolved, or NULL */
    struct session *sessions;  /* every client connection */
    struct pres_index *presence; /* presence.c: subscriptions and this pass's pushes, or NULL */
    size_t nsessions;
    struct rsess *relays;      /* relay sessions */
    size_t nrelays;
    tracker_stats stats;       /* for --metrics */
    struct metrics *metrics;   /* the metrics responder, or NULL */
    uv_signal_t sigint, sigterm;
    int stopping;
    int exit_code;
} tracker_ctx;

#endif
