/* tracker: the one context of the tracker process.  main.c fills it from the
 * command line and owns its lifetime; listen.c, server.c and the registry
 * work on it, always passed explicitly. */
#ifndef PARLEY_TRACKER_H
#define PARLEY_TRACKER_H

#include "log.h"
#include "online.h"
#include "registry.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TRACKER_PORT "5960"
#define TRACKER_HELLO_MS 10000   /* first complete frame within this */
#define TRACKER_MAX_QUEUED (1u << 20) /* a client this far behind is dropped */

typedef struct tracker_config {
    const char **listen; /* --listen HOST:PORT specs, in order */
    size_t nlisten;
    int default_listen;  /* no --listen given: IPv6 may be missing on this host */
    const char *db;
    unsigned ttl;        /* seconds of silence before a client is dropped */
    unsigned relay_per_user;  /* relay sessions one user may be part of at once */
    unsigned relay_max;       /* relay sessions at once in total */
    uint64_t relay_rate;      /* bytes per second per session (both directions) */
    unsigned relay_idle;      /* seconds without a byte before a session closes */
    unsigned relay_join_ms;   /* for both sides to join after the request */
} tracker_config;

#define RELAY_PER_USER_DEFAULT 8
#define RELAY_MAX_DEFAULT 1024
#define RELAY_RATE_DEFAULT (1024 * 1024)
#define RELAY_IDLE_DEFAULT 300
#define RELAY_JOIN_MS 10000
#define RELAY_HIGH_WATER (256 * 1024) /* pause a reader while its peer has this much queued */

struct listener;
struct lsn_job;
struct session;
struct rsess;

typedef struct tracker_ctx {
    uv_loop_t *loop;
    logger lg;
    tracker_config cfg;
    registry *reg;
    online *online;            /* registered sessions by folded name */
    struct listener *listeners;
    struct lsn_job *resolving; /* listen specs being resolved, or NULL */
    struct session *sessions;  /* every client connection */
    size_t nsessions;
    struct rsess *relays;      /* relay sessions */
    size_t nrelays;
    uv_signal_t sigint, sigterm;
    int stopping;
    int exit_code;
} tracker_ctx;

#endif
