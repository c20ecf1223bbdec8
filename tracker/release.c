/* release: --release NAME on the tracker's database file (release.h). */
#include "release.h"

#include "db.h"
#include "schema.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* A running tracker holds the write lock for one loop pass at a time (its
 * group commit): a few milliseconds, unless its disk is slow. */
#define RELEASE_BUSY_MS 10000

enum { Q_USER, Q_RECEIPTS, Q_MAIL_TO, Q_MAIL_FROM, Q_OLD_RECEIPTS, Q_DELETE_USER, Q_N };

static const char *const sql[Q_N] = {
    [Q_USER] = "SELECT name, online, created FROM users WHERE folded = ?1",
    /* Before the mail goes: each sender hears its message will never be
     * delivered, as for one that expired. */
    [Q_RECEIPTS] = "INSERT INTO receipts (sender, recipient, msg_id, status, expires)"
                   " SELECT sender, recipient_name, msg_id, 'expired', ?2 FROM mail"
                   " WHERE recipient = ?1 AND sender <> ?1 ORDER BY mid",
    [Q_MAIL_TO] = "DELETE FROM mail WHERE recipient = ?1",
    [Q_MAIL_FROM] = "DELETE FROM mail WHERE sender = ?1",
    [Q_OLD_RECEIPTS] = "DELETE FROM receipts WHERE sender = ?1",
    [Q_DELETE_USER] = "DELETE FROM users WHERE folded = ?1",
};

/* Runs q (bound to folded and, where it has ?2, expires) to its end:
 * SQLITE_DONE, or another code; *changes gets the rows it wrote. */
static int run(sqlite3 *sq, int q, const char *folded, int64_t expires, uint64_t *changes) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(sq, sql[q], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, folded, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, expires);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_finalize(st);
    if (changes)
        *changes = (uint64_t)sqlite3_changes(sq);
    return rc;
}

/* The binding of folded: SQLITE_ROW with out->name, out->created and
 * *online set, SQLITE_DONE when there is none, or an error. */
static int find_user(sqlite3 *sq, const char *folded, rel_result *out, int *online) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(sq, sql[Q_USER], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, folded, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *n = sqlite3_column_text(st, 0);
        snprintf(out->name, sizeof out->name, "%s", n ? (const char *)n : folded);
        *online = sqlite3_column_int(st, 1) != 0;
        out->created = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc;
}

int rel_release(const char *path, const char *name, int64_t receipt_expires, rel_result *out,
                char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *why;
    char folded[NAME_BUFLEN];
    size_t len = strlen(name);
    if (name_check(name, len, &why)) {
        char shown[NAME_BUFLEN];
        utf8_clean(name, len, shown, sizeof shown);
        snprintf(err, errlen, "--release %s: not a user name (%s), so no user holds it", shown,
                 why);
        return UV_EINVAL;
    }
    name_fold(name, len, folded);
    sqlite3 *sq = NULL;
    /* No SQLITE_OPEN_CREATE: a mistyped --db must not leave an empty file. */
    int rc = sqlite3_open_v2(path, &sq, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the tracker database %s: %s; give the tracker's "
                 "--db (or its --config)", path, sq ? sqlite3_errmsg(sq) : "out of memory");
        sqlite3_close(sq);
        return db_error(rc);
    }
    sqlite3_busy_timeout(sq, RELEASE_BUSY_MS);
    int version = 0, online = 0, e = 0;
    rc = db_int_pragma(sq, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK && (version < 1 || version > tracker_schema.n)) {
        if (version < 1)
            snprintf(err, errlen, "%s is not a tracker database (it holds no users table); give "
                     "the tracker's --db", path);
        else
            snprintf(err, errlen, "tracker database %s has schema version %d but this program "
                     "knows only up to %d; run the --release of the tracker that uses it", path,
                     version, tracker_schema.n);
        sqlite3_close(sq);
        return UV_EFTYPE;
    }
    /* The write lock first, so nothing changes between the look and the
     * deletes (a running tracker waits for this transaction, then reads
     * the file afresh). */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(sq, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = find_user(sq, folded, out, &online);
    if (rc == SQLITE_DONE) {
        snprintf(err, errlen, "no user %s in %s: nothing to release (names are compared "
                 "case-insensitively; is --db the tracker's database?)", name, path);
        e = UV_ENOENT;
    } else if (rc == SQLITE_ROW && online) {
        snprintf(err, errlen, "%s is online now, so its key is in use, not lost: nothing was "
                 "released.  Release it once it is offline (a tracker that was killed leaves "
                 "its users marked online until it starts again)", out->name);
        e = UV_EBUSY;
    } else if (rc == SQLITE_ROW) {
        rc = SQLITE_DONE;
        if (version >= 2) { /* the mailbox's tables */
            if (rc == SQLITE_DONE)
                rc = run(sq, Q_RECEIPTS, folded, receipt_expires, NULL);
            if (rc == SQLITE_DONE)
                rc = run(sq, Q_MAIL_TO, folded, 0, &out->mail_to);
            if (rc == SQLITE_DONE)
                rc = run(sq, Q_MAIL_FROM, folded, 0, &out->mail_from);
            if (rc == SQLITE_DONE)
                rc = run(sq, Q_OLD_RECEIPTS, folded, 0, &out->receipts);
        }
        if (rc == SQLITE_DONE)
            rc = run(sq, Q_DELETE_USER, folded, 0, NULL);
        if (rc == SQLITE_DONE)
            rc = sqlite3_exec(sq, "COMMIT", NULL, NULL, NULL);
    }
    if (e == 0 && rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_BUSY)
            snprintf(err, errlen, "tracker database %s stayed locked for %d s (another process "
                     "writing to it?); nothing was released, try again", path,
                     RELEASE_BUSY_MS / 1000);
        else
            snprintf(err, errlen, "cannot release %s in %s: %s; nothing was released", name,
                     path, sqlite3_errmsg(sq));
        e = db_error(rc);
    }
    if (e)
        sqlite3_exec(sq, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(sq);
    return e;
}
