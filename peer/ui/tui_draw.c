/* tui_draw: paints the whole screen from the model, the layout computed
 * afresh each time from LINES x COLS (so a resize is just a repaint):
 *
 *   +-- users ---+-- conversation title -----------------+
 *   | > bob  (2) | 12:01   bob: hi                        |
 *   |   carol    | 12:02 ✓ alice: hello                   |
 *   +------------+----------------------------------------+
 *   | status: name | tracker | online count | notice      |
 *   | input line                                          |
 *
 * ncurses sends only what changed, so painting everything is cheap. */
#include "tui_impl.h"

#include "grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tui_name_color(const tui *t, const char *name) {
    if (!t->colors)
        return 0;
    char fold[NAME_BUFLEN];
    if (name_fold(name, strlen(name), fold))
        snprintf(fold, sizeof fold, "%s", name);
    unsigned h = 2166136261u; /* FNV-1a: the same name, the same colour, every run */
    for (const unsigned char *p = (const unsigned char *)fold; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (int)(h % (unsigned)t->colors) + 1;
}

/* Writes s[0..n) at (y, x), at most cols columns; returns columns used. */
static int put(int y, int x, const char *s, size_t n, int cols) {
    size_t k = tui_fit(s, n, cols);
    if (k)
        mvaddnstr(y, x, s, (int)k);
    return tui_width(s, k);
}

static void fill(int y, int x, int cols) {
    for (int i = 0; i < cols; i++)
        mvaddch(y, x + i, ' ');
}

/* ---- users panel ---- */

static void paint_panel(tui *t, int pw, int rows) {
    static int idx[4096];
    int n = tui_panel_list(t, idx, 4096);
    char head[NAME_BUFLEN + 16];
    attron(A_BOLD);
    if (t->focus == FOCUS_PANEL || t->filter[0])
        snprintf(head, sizeof head, "find:%s", t->filter);
    else
        snprintf(head, sizeof head, "online %d", tui_online_count(t));
    fill(0, 0, pw);
    put(0, 0, head, strlen(head), pw);
    attroff(A_BOLD);
    int list_h = rows - 1;
    if (t->sel >= n)
        t->sel = n > 0 ? n - 1 : 0;
    if (t->sel < t->panel_top)
        t->panel_top = t->sel;
    if (list_h > 0 && t->sel >= t->panel_top + list_h)
        t->panel_top = t->sel - list_h + 1;
    if (t->panel_top > (n > list_h ? n - list_h : 0))
        t->panel_top = n > list_h ? n - list_h : 0;
    if (t->panel_top < 0)
        t->panel_top = 0;
    int digits = 0; /* of the window numbers, when there are windows */
    for (int k = t->nwindows ? t->nwindows + 1 : 0; k > 0; k /= 10)
        digits++;
    for (int r = 0; r < list_h; r++) {
        int i = t->panel_top + r;
        int y = r + 1;
        if (y < (int)(sizeof t->panel_map / sizeof *t->panel_map))
            t->panel_map[y] = i < n ? idx[i] : -1;
        if (i >= n)
            continue;
        tui_user *u = &t->users[idx[i]];
        tui_conv *cv = tui_conv_find(t, u->name);
        int selected = t->focus == FOCUS_PANEL && i == t->sel;
        if (selected)
            attron(A_REVERSE);
        fill(y, 0, pw);
        int open = cv && cv == t->shown;
        mvaddch(y, 0, open ? '>' : ' ');
        int x = 1;
        if (digits) { /* the window number (Alt-N), blank for a user without one */
            char num[16];
            snprintf(num, sizeof num, "%*.0d ", digits, cv ? cv->num : 0);
            x += put(y, 1, num, strlen(num), pw - 1);
        }
        char count[16] = "";
        if (cv && cv->unread)
            snprintf(count, sizeof count, " %d", cv->unread > 999 ? 999 : cv->unread);
        int cw = (int)strlen(count);
        int namew = pw - x - cw;
        int attr = u->online ? A_BOLD : A_DIM;
        int pair = tui_name_color(t, u->name);
        attron(attr | COLOR_PAIR(pair));
        put(y, x, u->name, strlen(u->name), namew > 0 ? namew : 0);
        attroff(attr | COLOR_PAIR(pair));
        if (cw && pw - cw > x) {
            int cattr = A_BOLD | (cv->mentioned ? A_REVERSE : 0); /* one names you */
            attron(cattr);
            mvaddstr(y, pw - cw + 1, count + 1);
            attroff(cattr);
        }
        if (selected)
            attroff(A_REVERSE);
    }
    if (n == 0 && list_h > 0) {
        const char *none = t->filter[0] ? "(no match)" : "(nobody)";
        attron(A_DIM);
        put(1, 1, none, strlen(none), pw - 1);
        attroff(A_DIM);
    }
}

/* ---- conversation pane ---- */

/* An entry as the one string that is wrapped: time and mark, sender, ": ",
 * text; part k ends at byte end[k] and is drawn with attr[k]. */
#define TUI_HL_MAX 32
typedef struct laid {
    const char *s;
    size_t n;
    size_t end[4];
    int attr[4];
    int indent; /* the hanging indent: under the text when that leaves room */
    size_t hl[TUI_HL_MAX][2]; /* the search's matches, [a, b) in s */
    int nhl;
    int hl_attr;
} laid;

/* The mark after the time: where one of our messages is. */
static const char *mark_of(const tui_entry *e) {
    if (e->kind != TE_OUT)
        return "  ";
    switch (e->state) {
    case TS_STORED: return "\xe2\x9c\x89 ";    /* U+2709: the tracker keeps it */
    case TS_DELIVERED: return "\xe2\x9c\x93 "; /* U+2713 */
    case TS_EXPIRED: return "\xe2\x9c\x97 ";   /* U+2717: the mailbox gave up */
    default: return "\xc2\xb7 ";                /* U+00B7: not acknowledged yet */
    }
}

#define TUI_WRAP_MIN 12 /* columns of text a hanging indent must leave */

/* The local day of an entry, year * 1000 + day of the year, and its tm. */
static long day_of(const tui_entry *e, struct tm *tm) {
    time_t secs = (time_t)(e->ts / 1000);
    localtime_r(&secs, tm);
    return (tm->tm_year + 1900) * 1000L + tm->tm_yday;
}

/* tm: the entry's time (day_of). */
static int lay_out(tui *t, const tui_entry *e, const struct tm *tm, int cols, laid *l) {
    char when[TUI_TIME_FORMAT_MAX * 2], stamp[TUI_TIME_FORMAT_MAX * 2 + 16];
    size_t wl = t->conf.time_format[0] ? strftime(when, sizeof when, t->conf.time_format, tm) : 0;
    if (wl == 0)
        strftime(when, sizeof when, "%H:%M:%S", tm);
    int sl = snprintf(stamp, sizeof stamp, "%s %s", when, mark_of(e));
    const char *from = e->kind == TE_INFO ? "" : e->from;
    const char *sep = e->kind == TE_INFO ? "" : ": ";
    size_t fl = strlen(from), pl = strlen(sep), tl = strlen(e->text);
    size_t need = (size_t)sl + fl + pl + tl + 1;
    char *b = grow(t->scratch, &t->scratch_cap, need, 1, 1024);
    if (!b)
        return -1;
    t->scratch = b;
    memcpy(b, stamp, (size_t)sl);
    memcpy(b + sl, from, fl);
    memcpy(b + sl + fl, sep, pl);
    memcpy(b + sl + fl + pl, e->text, tl + 1);
    l->s = b;
    l->n = need - 1;
    l->end[0] = (size_t)sl;
    l->end[1] = l->end[0] + fl;
    l->end[2] = l->end[1] + pl;
    l->end[3] = l->n;
    l->attr[0] = A_DIM;
    l->attr[1] = e->kind == TE_INFO ? 0 : A_BOLD | COLOR_PAIR(tui_name_color(t, e->from));
    l->attr[2] = 0;
    l->attr[3] = e->kind == TE_INFO ? A_DIM : 0;
    if (e->mention) { /* it names you: the sender stands out, the text is bold */
        l->attr[1] |= A_REVERSE;
        l->attr[3] = A_BOLD;
    }
    l->nhl = 0;
    /* Under the text (or a help line's description), else further left
     * as the pane narrows: past the time, then none. */
    int text_col = tui_width(b, l->end[2]);
    int tries[] = {text_col + e->hang, text_col, tui_width(b, l->end[0]), 0};
    size_t k = 0;
    while (k + 1 < sizeof tries / sizeof *tries && cols - tries[k] < TUI_WRAP_MIN)
        k++;
    l->indent = tries[k];
    return 0;
}

static int laid_rows(const laid *l, int cols) {
    tui_wrap w;
    tui_wrap_start(&w, l->s, l->n, cols, l->indent);
    size_t a, b;
    int c, rows = 0;
    while (tui_wrap_next(&w, &a, &b, &c))
        rows++;
    return rows;
}

/* Draws bytes [start, end) of l at (y, x), in each part's attribute,
 * never past column xmax. */
static void draw_row(const laid *l, size_t start, size_t end, int y, int x, int xmax) {
    int k = 0;
    for (size_t i = start; i < end;) {
        while (k < 3 && i >= l->end[k])
            k++;
        unsigned cp;
        int w;
        size_t len = tui_char(l->s + i, end - i, &cp, &w);
        if (x + w > xmax)
            break;
        int attr = l->attr[k];
        for (int h = 0; h < l->nhl; h++)
            if (i >= l->hl[h][0] && i < l->hl[h][1])
                attr |= l->hl_attr;
        attron(attr);
        if (cp == 0xfffd && len == 1)
            mvaddstr(y, x, "\xef\xbf\xbd");
        else
            mvaddnstr(y, x, l->s + i, (int)len);
        attroff(attr);
        x += w;
        i += len;
    }
}

/* Marks the search's matches in l: the sender's and the text's. */
static void highlight(const tui *t, const tui_entry *e, uint64_t num, laid *l) {
    const tui_search *q = &t->search;
    l->hl_attr = q->has_hit && q->hit == num ? A_REVERSE | A_BOLD | A_UNDERLINE : A_REVERSE;
    for (int part = 1; part <= 3; part += 2) {
        size_t from = l->end[part - 1], to = l->end[part], a, b;
        if (part == 1 && e->kind == TE_INFO)
            continue;
        while (from < to && l->nhl < TUI_HL_MAX &&
               tui_find(l->s + from, to - from, q->q, q->qlen, &a, &b) == 0) {
            l->hl[l->nhl][0] = from + a;
            l->hl[l->nhl][1] = from + b;
            l->nhl++;
            from += b;
        }
    }
}

/* A date line goes before entry i: the day changed since the entry
 * before, or the first is not from today.  *prev: the day before. */
static int date_before(const tui *t, size_t i, long day, long *prev) {
    int yes = i == 0 ? day != t->today : day != *prev;
    *prev = day;
    return yes;
}

/* Where a search's hit must be for the paint: scrolls cv so that rows
 * [top, top + n) are on screen, in the middle when they were not. */
static void reveal(tui_conv *cv, int total, int body, int top, int n) {
    int wstart = total - cv->scroll - body;
    if (wstart < 0)
        wstart = 0;
    if (top >= wstart && top + n <= wstart + body)
        return;
    int want = n >= body ? top : top - (body - n) / 2;
    if (want > total - body)
        want = total - body;
    if (want < 0)
        want = 0;
    cv->scroll = total - body - want;
}

static void paint_pane(tui *t, int x0, int cols, int rows) {
    tui_conv *cv = tui_here(t);
    char title[256];
    if (!t->shown)
        snprintf(title, sizeof title, " parley: notices, window 1 (click a name to chat)");
    else
        snprintf(title, sizeof title, " %s - %s", cv->name,
                 cv->linked ? (cv->path == EV_PATH_RELAY ? "relay" : "direct") : "not connected");
    int body = rows - 1;
    laid l;
    struct tm tm;
    long prev = 0;
    /* How many rows from the end are needed, and the scroll clamp. */
    int total = 0, hit_top = -1, hit_rows = 0;
    for (size_t i = 0; i < cv->n; i++) {
        total += date_before(t, i, day_of(cv->v[i], &tm), &prev);
        if (lay_out(t, cv->v[i], &tm, cols, &l) != 0)
            continue;
        int n = laid_rows(&l, cols);
        if (cv->revealing && cv->dropped + i == cv->reveal)
            hit_top = total, hit_rows = n;
        total += n;
    }
    if (cv->revealing && body > 0) {
        cv->revealing = 0;
        if (hit_top >= 0)
            reveal(cv, total, body, hit_top, hit_rows);
    }
    int maxscroll = total > body ? total - body : 0;
    if (cv->scroll > maxscroll)
        cv->scroll = maxscroll;
    if (cv->scroll > 0) {
        size_t tl = strlen(title);
        snprintf(title + tl, sizeof title - tl, "  [%d more below: PgDn]", cv->scroll);
    }
    attron(A_REVERSE);
    fill(0, x0, cols);
    put(0, x0, title, strlen(title), cols);
    attroff(A_REVERSE);
    if (body <= 0)
        return;
    int wstart = total - cv->scroll - body;
    if (wstart < 0)
        wstart = 0;
    int wend = wstart + body;
    int cur = 0;
    int searching = t->search.active && t->search.cv == cv && t->search.qlen;
    prev = 0;
    for (size_t i = 0; i < cv->n && cur < wend; i++) {
        if (date_before(t, i, day_of(cv->v[i], &tm), &prev)) {
            if (cur >= wstart) {
                char date[80];
                tui_date_line(&tm, date, sizeof date);
                attron(A_BOLD);
                put(1 + cur - wstart, x0, date, strlen(date), cols);
                attroff(A_BOLD);
            }
            cur++;
        }
        if (cur >= wend || lay_out(t, cv->v[i], &tm, cols, &l) != 0)
            continue;
        if (searching && tui_search_matches(t, cv->v[i]))
            highlight(t, cv->v[i], cv->dropped + i, &l);
        tui_wrap w;
        tui_wrap_start(&w, l.s, l.n, cols, l.indent);
        size_t a, b;
        int c;
        for (; cur < wend && tui_wrap_next(&w, &a, &b, &c); cur++)
            if (cur >= wstart)
                draw_row(&l, a, b, 1 + cur - wstart, x0 + c, x0 + cols);
        while (tui_wrap_next(&w, &a, &b, &c)) /* rows past the window still count */
            cur++;
    }
}

/* ---- status bar and input line ---- */

static void paint_status(tui *t, int y, int cols) {
    char trk[64];
    if (t->trk == TRK_CONNECTED) {
        snprintf(trk, sizeof trk, "tracker: connected");
    } else if (t->trk == TRK_RECONNECTING) {
        uint64_t now = uv_now(t->ctx->loop);
        unsigned s = t->retry_at > now ? (unsigned)((t->retry_at - now + 999) / 1000) : 0;
        if (s)
            snprintf(trk, sizeof trk, "tracker: reconnecting in %u s", s);
        else
            snprintf(trk, sizeof trk, "tracker: reconnecting");
    } else {
        snprintf(trk, sizeof trk, "tracker: connecting");
    }
    char line[1024], what[400];
    const char *last = t->notice[0] ? t->notice
                                    : "Tab: users  Alt-N: windows  Ctrl-R: search  /help";
    if (t->search.active) {
        int nth, n = tui_search_count(t, &nth);
        const char *keys = "Ctrl-R older, Down newer, Enter stays, Esc goes back";
        if (!t->search.qlen)
            snprintf(what, sizeof what, "search this window: type the text; Esc goes back");
        else if (!n)
            snprintf(what, sizeof what, "no match in this window; Backspace, or Esc goes back");
        else
            snprintf(what, sizeof what, "match %d of %d%s; %s", nth, n,
                     !t->search.stuck ? "" : nth <= 1 ? " (no older one)" : " (no newer one)",
                     keys);
        last = what;
    } else if (t->flash[0]) {
        last = t->flash;
    }
    snprintf(line, sizeof line, " %s | %s | %d online | %s", t->me, trk, tui_online_count(t),
             last);
    char *clean = tui_sanitize(line, strlen(line), 0);
    attron(A_REVERSE);
    fill(y, 0, cols);
    if (clean) {
        size_t n = strlen(clean);
        /* Cut: an ellipsis says so; the notice is in full in the window. */
        if (tui_width(clean, n) > cols && cols > 1)
            mvaddstr(y, put(y, 0, clean, n, cols - 1), "\xe2\x80\xa6");
        else
            put(y, 0, clean, n, cols);
    }
    attroff(A_REVERSE);
    free(clean);
}

/* Draws the input line (or a search's query in its place); returns the
 * cursor column. */
static int paint_input(tui *t, int y, int cols) {
    tui_input search = {0}, *in = &t->in;
    char prompt[NAME_BUFLEN + 8];
    if (t->search.active) {
        memcpy(search.buf, t->search.q, t->search.qlen + 1);
        search.len = search.cur = t->search.qlen;
        in = &search;
        snprintf(prompt, sizeof prompt, "search: ");
    } else if (t->shown) {
        snprintf(prompt, sizeof prompt, "%s> ", t->shown->name);
    } else {
        snprintf(prompt, sizeof prompt, "> ");
    }
    fill(y, 0, cols);
    int pw = put(y, 0, prompt, strlen(prompt), cols / 3 > 2 ? cols / 3 : 2);
    int avail = cols - pw - 1;
    if (avail < 1)
        return cols - 1;
    /* Scroll sideways so the cursor stays on screen, a third of the width
     * of context before it. */
    size_t start = in->cur;
    int before = 0;
    while (start > 0) {
        size_t p = tui_prev_char(in->buf, start);
        int w = in->buf[p] == '\n' ? 1 : tui_width(in->buf + p, start - p);
        if (before + w > (in->cur == in->len ? avail - 1 : avail * 2 / 3))
            break;
        before += w;
        start = p;
    }
    int col = pw, curcol = pw;
    for (size_t i = start; i <= in->len; ) {
        if (i == in->cur)
            curcol = col;
        if (i == in->len)
            break;
        if (in->buf[i] == '\n') {
            if (col + 1 > pw + avail)
                break;
            attron(A_DIM);
            mvaddstr(y, col, "\xe2\x86\xb5"); /* a pasted line break */
            attroff(A_DIM);
            col++;
            i++;
            continue;
        }
        unsigned cp;
        int w;
        size_t k = tui_char(in->buf + i, in->len - i, &cp, &w);
        if (col + w > pw + avail)
            break;
        mvaddnstr(y, col, in->buf + i, (int)k);
        col += w;
        i += k;
    }
    return curcol;
}

void tui_paint(tui *t) {
    int H = LINES, W = COLS;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    t->today = (tm.tm_year + 1900) * 1000L + tm.tm_yday;
    erase();
    for (size_t i = 0; i < sizeof t->panel_map / sizeof *t->panel_map; i++)
        t->panel_map[i] = -1;
    if (H < 3 || W < 12) {
        put(0, 0, "window too small", 16, W);
        refresh();
        return;
    }
    int body = H - 2;
    int pw = W >= 60 ? (W / 4 > 24 ? 24 : W / 4) : (W / 4 < 10 ? 10 : W / 4);
    t->panel_w = pw;
    paint_panel(t, pw, body);
    attron(A_DIM);
    for (int y = 0; y < body; y++)
        mvaddstr(y, pw, "\xe2\x94\x82"); /* U+2502: ACS lines do not survive every terminal */
    attroff(A_DIM);
    t->pane_body_top = 1;
    t->pane_body_h = body - 1;
    paint_pane(t, pw + 1, W - pw - 1, body);
    paint_status(t, H - 2, W);
    int cx = paint_input(t, H - 1, W);
    if (t->focus == FOCUS_INPUT) {
        curs_set(1);
        move(H - 1, cx);
    } else {
        curs_set(0);
    }
    refresh();
}
