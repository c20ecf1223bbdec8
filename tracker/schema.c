/* schema: the tracker database's migrations (schema.h). */
#include "schema.h"

/* Entry i brings user_version from i to i+1 and ends by recording that.
 * Append only; never edit a released entry. */
static const char *const migrations[] = {
    "CREATE TABLE users ("
    " folded TEXT PRIMARY KEY NOT NULL,"  /* name_fold() form: the key */
    " name TEXT NOT NULL,"                /* spelling of the first registration */
    " key BLOB NOT NULL CHECK (length(key) = 32),"
    " endpoints TEXT NOT NULL DEFAULT '',"/* space-separated numeric HOST:PORT */
    " last_seen INTEGER NOT NULL DEFAULT 0,"
    " online INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    /* list pages walk this index: online = 1, folded in a range, in order */
    "CREATE INDEX users_online ON users (online, folded);"
    "PRAGMA user_version = 1;",
};

const db_schema tracker_schema = {
    .migrations = migrations,
    .n = (int)(sizeof migrations / sizeof *migrations),
    .what = "tracker database",
    .hint = "use --db to pick another file",
    /* No session survives a restart, so nobody is online yet. */
    .at_open = "UPDATE users SET online = 0 WHERE online <> 0",
    /* An answer (registered) waits for the fsync that covers its commit,
     * as before, but the fsync runs on the db's sync thread: lookups and
     * the next batch go on meanwhile (shared/db.h). */
    .sync_thread = DB_SYNC_WAIT,
};
