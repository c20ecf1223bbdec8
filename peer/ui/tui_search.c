/* tui_search: searching the scrollback of the window on screen, as
 * readline's and WeeChat's Ctrl-R do.  The query is typed where the input
 * line was (the line itself waits, untouched); each change looks for the
 * newest entry that holds it, from the one found so far back; Ctrl-R
 * again goes to an older one, Down to a newer one.  The entry found is
 * scrolled onto the screen at the next paint (tui_draw.c), which also
 * highlights every match.  Enter leaves the search where it is, Esc goes
 * back to where the window was.  Matching ignores case (tui_find) and
 * looks at an entry's sender and its text; /search TEXT starts the same
 * search with TEXT typed. */
#include "tui_impl.h"

#include <string.h>

int tui_search_matches(const tui *t, const tui_entry *e) {
    const tui_search *s = &t->search;
    size_t a, b;
    if (s->qlen == 0)
        return 0;
    if (e->from && e->kind != TE_INFO &&
        tui_find(e->from, strlen(e->from), s->q, s->qlen, &a, &b) == 0)
        return 1;
    return tui_find(e->text, strlen(e->text), s->q, s->qlen, &a, &b) == 0;
}

/* Entry number hit of the searched window, or NULL when it is gone. */
static tui_entry *numbered(const tui_conv *cv, uint64_t hit) {
    if (hit < cv->dropped || hit - cv->dropped >= cv->n)
        return NULL;
    return cv->v[hit - cv->dropped];
}

/* From entry index i (inclusive), towards older (dir -1) or newer (+1)
 * entries: the first that holds the query becomes the hit.  0 found. */
static int seek(tui *t, long i, int dir) {
    tui_search *s = &t->search;
    tui_conv *cv = s->cv;
    for (; i >= 0 && i < (long)cv->n; i += dir) {
        if (tui_search_matches(t, cv->v[i])) {
            s->has_hit = 1;
            s->hit = cv->dropped + (uint64_t)i;
            cv->revealing = 1;
            cv->reveal = s->hit;
            return 0;
        }
    }
    return -1;
}

/* The query changed: the hit stays if it still holds it, else the next
 * older one that does (the newest of all when there was none). */
static void research(tui *t) {
    tui_search *s = &t->search;
    s->stuck = 0;
    long from = (long)s->cv->n - 1;
    if (s->has_hit && numbered(s->cv, s->hit))
        from = (long)(s->hit - s->cv->dropped);
    if (seek(t, from, -1) != 0)
        s->has_hit = 0;
    tui_dirty(t);
}

void tui_search_start(tui *t, const char *q, size_t n) {
    tui_search *s = &t->search;
    if (s->active)
        tui_search_stop(t, 1);
    memset(s, 0, sizeof *s);
    s->active = 1;
    s->cv = tui_here(t);
    s->saved_scroll = s->cv->scroll;
    t->focus = FOCUS_INPUT;
    tui_search_type(t, q, n);
}

void tui_search_type(tui *t, const char *q, size_t n) {
    tui_search *s = &t->search;
    if (s->qlen + n >= sizeof s->q) {
        n = sizeof s->q - 1 - s->qlen;
        while (n > 0 && ((unsigned char)q[n] & 0xc0) == 0x80)
            n--; /* never half a character */
    }
    for (size_t i = 0; i < n; i++) /* a pasted line break or tab: a space */
        s->q[s->qlen + i] = q[i] == '\n' || q[i] == '\r' || q[i] == '\t' ? ' ' : q[i];
    s->qlen += n;
    s->q[s->qlen] = '\0';
    research(t);
}

void tui_search_erase(tui *t) {
    tui_search *s = &t->search;
    s->qlen = tui_prev_char(s->q, s->qlen);
    s->q[s->qlen] = '\0';
    research(t);
}

static void step(tui *t, int dir) {
    tui_search *s = &t->search;
    long from = dir < 0 ? (long)s->cv->n - 1 : 0;
    if (s->has_hit && numbered(s->cv, s->hit))
        from = (long)(s->hit - s->cv->dropped) + dir;
    else if (s->has_hit)
        from = dir < 0 ? -1 : 0; /* the hit scrolled out of the window's cap: older are gone too */
    s->stuck = s->qlen > 0 && seek(t, from, dir) != 0;
    if (s->has_hit && !s->stuck) {
        s->cv->revealing = 1;
        s->cv->reveal = s->hit;
    }
    tui_dirty(t);
}

void tui_search_older(tui *t) { step(t, -1); }
void tui_search_newer(tui *t) { step(t, +1); }

void tui_search_stop(tui *t, int stay) {
    tui_search *s = &t->search;
    if (!s->active)
        return;
    if (!stay) {
        s->cv->scroll = s->saved_scroll;
        s->cv->revealing = 0;
    }
    s->active = 0;
    s->cv = NULL;
    tui_dirty(t);
}

int tui_search_count(const tui *t, int *nth) {
    const tui_search *s = &t->search;
    int n = 0;
    *nth = 0;
    if (!s->active || !s->cv)
        return 0;
    for (size_t i = 0; i < s->cv->n; i++) {
        if (!tui_search_matches(t, s->cv->v[i]))
            continue;
        n++;
        if (s->has_hit && s->cv->dropped + i == s->hit)
            *nth = n;
    }
    return n;
}
