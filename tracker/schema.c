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

    /* 2: the offline mailbox (mailbox.c).  Ciphertext the tracker cannot
     * read, waiting for its recipient; mid is AUTOINCREMENT so an old mid
     * a recipient acknowledges late can never name a newer message. */
    "CREATE TABLE mail ("
    " mid INTEGER PRIMARY KEY AUTOINCREMENT,"
    " recipient TEXT NOT NULL,"           /* folded */
    " recipient_name TEXT NOT NULL,"      /* as stored, for the sender's receipt */
    " sender TEXT NOT NULL,"              /* folded */
    " sender_name TEXT NOT NULL,"         /* as stored when the mail was */
    " sender_key BLOB NOT NULL CHECK (length(sender_key) = 32),"
    " msg_id INTEGER NOT NULL,"           /* the sender's id, a uint64 stored bit for bit */
    " size INTEGER NOT NULL,"             /* length(box), kept apart for the limits */
    " stored INTEGER NOT NULL,"           /* unix seconds */
    " expires INTEGER NOT NULL,"
    /* Last: a large box spills into overflow pages, and the columns
     * before it stay readable without touching them. */
    " box BLOB NOT NULL,"
    " UNIQUE (sender, recipient, msg_id)" /* a resent mail_put stores nothing twice */
    ");"
    /* a recipient's mail in order (the delivery window); size makes it
     * cover the per-recipient byte count */
    "CREATE INDEX mail_recipient ON mail (recipient, mid, size);"
    "CREATE INDEX mail_expires ON mail (expires);"
    "CREATE TABLE receipts ("
    " rid INTEGER PRIMARY KEY AUTOINCREMENT,"
    " sender TEXT NOT NULL,"              /* folded: whom the receipt is for */
    " recipient TEXT NOT NULL,"           /* the recipient's name as stored */
    " msg_id INTEGER NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('delivered', 'expired', 'refused')),"
    " expires INTEGER NOT NULL"
    ");"
    "CREATE INDEX receipts_sender ON receipts (sender, rid);"
    /* a mail_put resent after its mail was delivered finds the receipt */
    "CREATE INDEX receipts_msg ON receipts (sender, msg_id);"
    "CREATE INDEX receipts_expires ON receipts (expires);"
    "PRAGMA user_version = 2;",
    /* 3: each recipient's mailbox use, kept by triggers in the same
     * transaction as the mail itself, so mail_put's limit check is one
     * primary-key read instead of a walk over a mailbox that may hold
     * thousands (a fill of one mailbox was quadratic). */
    "CREATE TABLE mail_use ("
    " recipient TEXT PRIMARY KEY NOT NULL," /* folded */
    " msgs INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT INTO mail_use (recipient, msgs, bytes)"
    " SELECT recipient, count(*), total(size) FROM mail GROUP BY recipient;"
    "CREATE TRIGGER mail_use_put AFTER INSERT ON mail BEGIN"
    " INSERT INTO mail_use (recipient, msgs, bytes) VALUES (NEW.recipient, 1, NEW.size)"
    " ON CONFLICT (recipient) DO UPDATE SET msgs = msgs + 1, bytes = bytes + NEW.size;"
    " END;"
    "CREATE TRIGGER mail_use_take AFTER DELETE ON mail BEGIN"
    " UPDATE mail_use SET msgs = msgs - 1, bytes = bytes - OLD.size"
    " WHERE recipient = OLD.recipient;"
    " DELETE FROM mail_use WHERE recipient = OLD.recipient AND msgs <= 0;"
    " END;"
    "PRAGMA user_version = 3;",
    /* 4: look-alike names (confusable.h).  Each name's TR39 skeleton, so
     * that a new name looking like one bound to another key is one indexed
     * lookup away.  SQL cannot compute a skeleton: registry.c fills in
     * every NULL one at open, in C, in the transaction that ran this
     * (db_schema.at_open_c), and recomputes them all when the ICU recorded
     * in meta ('skeletons') is not the one running. */
    "ALTER TABLE users ADD COLUMN skeleton TEXT;"
    "CREATE INDEX users_skeleton ON users (skeleton);"
    "CREATE TABLE meta ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " value TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "PRAGMA user_version = 4;",
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
