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
        char count[16] = "";
        if (cv && cv->unread)
            snprintf(count, sizeof count, " %d", cv->unread > 999 ? 999 : cv->unread);
        int cw = (int)strlen(count);
        int namew = pw - 1 - cw;
        int attr = u->online ? A_BOLD : A_DIM;
        int pair = tui_name_color(t, u->name);
        attron(attr | COLOR_PAIR(pair));
        put(y, 1, u->name, strlen(u->name), namew > 0 ? namew : 0);
        attroff(attr | COLOR_PAIR(pair));
        if (cw && pw - cw > 1) {
            attron(A_BOLD);
            mvaddstr(y, pw - cw, count);
            attroff(A_BOLD);
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
typedef struct laid {
    const char *s;
    size_t n;
    size_t end[4];
    int attr[4];
    int indent; /* the hanging indent: under the text when that leaves room */
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

static int lay_out(tui *t, const tui_entry *e, int cols, laid *l) {
    time_t secs = (time_t)(e->ts / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    char stamp[48];
    int sl = 0;
    if ((tm.tm_year + 1900) * 1000L + tm.tm_yday != t->today) /* from another day */
        sl = snprintf(stamp, sizeof stamp, "%04d-%02d-%02d ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday);
    sl += snprintf(stamp + sl, sizeof stamp - (size_t)sl, "%02d:%02d %s", tm.tm_hour, tm.tm_min,
                   mark_of(e));
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
        attron(l->attr[k]);
        if (cp == 0xfffd && len == 1)
            mvaddstr(y, x, "\xef\xbf\xbd");
        else
            mvaddnstr(y, x, l->s + i, (int)len);
        attroff(l->attr[k]);
        x += w;
        i += len;
    }
}

static void paint_pane(tui *t, int x0, int cols, int rows) {
    tui_conv *cv = tui_here(t);
    char title[256];
    if (!t->shown)
        snprintf(title, sizeof title, " parley: notices (click a name to chat)");
    else
        snprintf(title, sizeof title, " %s - %s", cv->name,
                 cv->linked ? (cv->path == EV_PATH_RELAY ? "relay" : "direct") : "not connected");
    int body = rows - 1;
    laid l;
    /* How many rows from the end are needed, and the scroll clamp. */
    int total = 0;
    for (size_t i = 0; i < cv->n; i++)
        if (lay_out(t, cv->v[i], cols, &l) == 0)
            total += laid_rows(&l, cols);
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
    for (size_t i = 0; i < cv->n && cur < wend; i++) {
        if (lay_out(t, cv->v[i], cols, &l) != 0)
            continue;
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
    char line[1024];
    snprintf(line, sizeof line, " %s | %s | %d online | %s", t->me, trk, tui_online_count(t),
             t->notice[0] ? t->notice : "Tab: users  PgUp/PgDn: scroll  /help");
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

/* Draws the input line; returns the cursor column. */
static int paint_input(tui *t, int y, int cols) {
    tui_input *in = &t->in;
    char prompt[NAME_BUFLEN + 8];
    if (t->shown)
        snprintf(prompt, sizeof prompt, "%s> ", t->shown->name);
    else
        snprintf(prompt, sizeof prompt, "> ");
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
