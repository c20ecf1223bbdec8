/* tui_model: what the terminal UI knows, independent of how it is drawn:
 * the users it has heard of (online from the tracker's list and presence
 * pushes), one conversation per peer with its scrollback, and the status
 * bar's notice with what ends it.  The model only grows by events;
 * nothing here talks to the network. */
#include "tui_impl.h"

#include "grow.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t tui_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int fold_of(const char *name, char out[NAME_BUFLEN]) {
    if (name_fold(name, strlen(name), out) == 0)
        return 0;
    snprintf(out, NAME_BUFLEN, "%s", name);
    return -1;
}

tui_conv *tui_conv_find(tui *t, const char *name) {
    char fold[NAME_BUFLEN];
    fold_of(name, fold);
    for (tui_conv *cv = t->convs; cv; cv = cv->next)
        if (strcmp(cv->fold, fold) == 0)
            return cv;
    return NULL;
}

tui_conv *tui_conv_get(tui *t, const char *name) {
    tui_conv *cv = tui_conv_find(t, name);
    if (cv) {
        snprintf(cv->name, sizeof cv->name, "%s", name); /* latest spelling */
        return cv;
    }
    cv = calloc(1, sizeof *cv);
    if (!cv)
        return NULL;
    snprintf(cv->name, sizeof cv->name, "%s", name);
    fold_of(name, cv->fold);
    cv->num = ++t->nwindows + 1; /* in the order they come; the notices are 1 */
    cv->next = t->convs;
    t->convs = cv;
    tui_user_get(t, name); /* a conversation partner stays in the panel */
    return cv;
}

tui_conv *tui_window(tui *t, int num) {
    for (tui_conv *cv = t->convs; cv; cv = cv->next)
        if (cv->num == num)
            return cv;
    return NULL;
}

static void entry_free(tui_entry *e) {
    if (!e)
        return;
    free(e->from);
    free(e->text);
    free(e);
}

tui_entry *tui_conv_add(tui_conv *cv, int kind, int64_t ts, uint64_t seq, const char *from,
                        const char *text, size_t len) {
    tui_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->kind = kind;
    e->ts = ts;
    e->seq = seq;
    e->from = from ? strdup(from) : NULL;
    e->text = tui_sanitize(text, len, 1);
    if ((from && !e->from) || !e->text) {
        entry_free(e);
        return NULL;
    }
    if (cv->n == TUI_CONV_MAX_ENTRIES) {
        entry_free(cv->v[0]);
        memmove(cv->v, cv->v + 1, (cv->n - 1) * sizeof *cv->v);
        cv->n--;
        cv->dropped++;
    }
    tui_entry **v = grow(cv->v, &cv->cap, cv->n + 1, sizeof *v, 32);
    if (!v) {
        entry_free(e);
        return NULL;
    }
    cv->v = v;
    cv->v[cv->n++] = e;
    return e;
}

/* Formatted without a length limit: a notice is shown whole, however long
 * (an error may quote a long input line).  NULL when out of memory. */
static char *vformat(const char *fmt, va_list ap) {
    char *text;
    return vasprintf(&text, fmt, ap) < 0 ? NULL : text;
}

void tui_conv_info(tui_conv *cv, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    if (text)
        tui_conv_add(cv, TE_INFO, tui_now_ms(), 0, NULL, text, strlen(text));
    free(text);
}

void tui_conv_clear(tui_conv *cv) {
    for (size_t i = 0; i < cv->n; i++)
        entry_free(cv->v[i]);
    free(cv->v);
    cv->v = NULL;
    cv->dropped += cv->n;
    cv->n = cv->cap = 0;
    cv->scroll = 0;
    cv->revealing = 0;
}

void tui_model_free(tui *t) {
    while (t->convs) {
        tui_conv *cv = t->convs;
        t->convs = cv->next;
        tui_conv_clear(cv);
        free(cv);
    }
    tui_conv_clear(&t->system);
    free(t->users);
    t->users = NULL;
    t->nusers = t->capusers = 0;
}

tui_conv *tui_here(tui *t) { return t->shown ? t->shown : &t->system; }

/* ---- the status-bar notice ---- */

void tui_notice(tui *t, const tui_conv *logged, int about, const char *who, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    if (!text)
        return;
    tui_conv *cv = tui_here(t);
    if (cv != logged)
        tui_conv_add(cv, TE_INFO, tui_now_ms(), 0, NULL, text, strlen(text));
    snprintf(t->notice, sizeof t->notice, "%s", text); /* still wider than any screen */
    free(text);
    t->notice_about = about;
    t->notice_who[0] = '\0';
    if (who)
        fold_of(who, t->notice_who);
}

void tui_notice_over(tui *t, int about, const char *who) {
    if (!t->notice[0] || t->notice_about != about)
        return;
    char fold[NAME_BUFLEN] = "";
    if (who)
        fold_of(who, fold);
    if (about == NOTE_USER && strcmp(fold, t->notice_who) != 0)
        return;
    tui_notice_clear(t);
}

void tui_notice_clear(tui *t) {
    t->notice[0] = '\0';
    t->notice_about = NOTE_OTHER;
    t->notice_who[0] = '\0';
}

/* ---- users, kept sorted by folded name like the tracker's list ---- */

tui_user *tui_user_get(tui *t, const char *name) {
    char fold[NAME_BUFLEN];
    fold_of(name, fold);
    size_t lo = 0, hi = t->nusers;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(t->users[mid].fold, fold);
        if (c == 0) {
            snprintf(t->users[mid].name, sizeof t->users[mid].name, "%s", name);
            return &t->users[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    tui_user *nu = grow(t->users, &t->capusers, t->nusers + 1, sizeof *nu, 64);
    if (!nu)
        return NULL;
    t->users = nu;
    memmove(t->users + lo + 1, t->users + lo, (t->nusers - lo) * sizeof *t->users);
    t->nusers++;
    tui_user *u = &t->users[lo];
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    strcpy(u->fold, fold);
    return u;
}

void tui_user_set_online(tui *t, const char *name, int online) {
    tui_user *u = tui_user_get(t, name);
    if (u)
        u->online = online;
}

int tui_online_count(const tui *t) {
    int n = 0;
    for (size_t i = 0; i < t->nusers; i++)
        n += t->users[i].online && strcmp(t->users[i].fold, t->ctx->user_fold) != 0;
    return n;
}

int tui_panel_list(tui *t, int *idx, int max) {
    char ffold[NAME_BUFLEN];
    const char *f = NULL;
    if (t->filter[0]) {
        fold_of(t->filter, ffold);
        f = ffold;
    }
    int n = 0;
    for (size_t i = 0; i < t->nusers && n < max; i++) {
        tui_user *u = &t->users[i];
        if (strcmp(u->fold, t->ctx->user_fold) == 0)
            continue;
        if (!u->online && !tui_conv_find(t, u->name))
            continue;
        if (f && !strstr(u->fold, f))
            continue;
        idx[n++] = (int)i;
    }
    return n;
}
