/* tui_text: how UTF-8 text occupies the screen.  Widths come from wcwidth
 * (the locale is set to UTF-8 when the terminal UI starts), so wide CJK
 * glyphs and emoji take two columns and combining marks none; anything
 * unprintable is escaped before it can reach the terminal.  Lines longer
 * than the pane are broken into rows here, by column, never by byte. */
#include "tui_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

size_t tui_char(const char *s, size_t n, unsigned *cp, int *w) {
    size_t k = utf8_decode((const unsigned char *)s, n, cp);
    if (k == 0) {
        *cp = 0xfffd;
        *w = 1;
        return 1;
    }
    int cw = wcwidth((wchar_t)*cp);
    if (cw < 0)
        cw = *cp < 0x20 ? 0 : 1; /* unknown to the locale: assume one column */
    *w = cw > 2 ? 2 : cw;
    return k;
}

int tui_width(const char *s, size_t n) {
    int cols = 0;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        int w;
        i += tui_char(s + i, n - i, &cp, &w);
        cols += w;
    }
    return cols;
}

size_t tui_fit(const char *s, size_t n, int cols) {
    size_t i = 0;
    int used = 0;
    while (i < n) {
        unsigned cp;
        int w;
        size_t k = tui_char(s + i, n - i, &cp, &w);
        if (used + w > cols)
            break;
        used += w;
        i += k;
    }
    return i;
}

char *tui_sanitize(const char *s, size_t n, int keep_nl) {
    static const char hex[] = "0123456789abcdef";
    char *o = malloc(n * 4 + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (c == '\n' && keep_nl) {
            o[j++] = '\n';
            i++;
        } else if (c == '\t') {
            o[j++] = ' ';
            i++;
        } else if (k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
            size_t m = k ? k : 1; /* an invalid byte, or the bytes of a control */
            for (size_t b = 0; b < m; b++) {
                unsigned char x = (unsigned char)s[i + b];
                o[j++] = '\\';
                o[j++] = 'x';
                o[j++] = hex[x >> 4];
                o[j++] = hex[x & 15];
            }
            i += m;
        } else {
            memcpy(o + j, s + i, k);
            j += k;
            i += k;
        }
    }
    o[j] = '\0';
    return o;
}

size_t tui_prev_char(const char *s, size_t cur) {
    if (cur == 0)
        return 0;
    size_t i = cur - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

size_t tui_next_char(const char *s, size_t len, size_t cur) {
    if (cur >= len)
        return len;
    unsigned cp;
    int w;
    return cur + tui_char(s + cur, len - cur, &cp, &w);
}

/* ---- finding text: search and mentions ---- */

static unsigned fold_cp(unsigned cp) { return (unsigned)towlower((wint_t)cp); }

/* The end of needle matched at s[i] ignoring case, or 0 when it does not
 * match there. */
static size_t match_at(const char *s, size_t n, size_t i, const char *needle, size_t m) {
    size_t j = 0;
    while (j < m) {
        if (i >= n)
            return 0;
        unsigned a, b;
        int w;
        size_t ka = tui_char(s + i, n - i, &a, &w);
        size_t kb = tui_char(needle + j, m - j, &b, &w);
        if (a != b && fold_cp(a) != fold_cp(b))
            return 0;
        i += ka;
        j += kb;
    }
    return i;
}

int tui_find(const char *s, size_t n, const char *needle, size_t m, size_t *a, size_t *b) {
    if (m == 0)
        return -1;
    for (size_t i = 0; i < n; i = tui_next_char(s, n, i)) {
        size_t e = match_at(s, n, i, needle, m);
        if (e) {
            *a = i;
            *b = e;
            return 0;
        }
    }
    return -1;
}

static int word_cp(unsigned cp) { return cp == '_' || iswalnum((wint_t)cp); }

int tui_mentions(const char *text, size_t n, const char *name) {
    size_t m = strlen(name), a, b;
    for (size_t from = 0; from < n && tui_find(text + from, n - from, name, m, &a, &b) == 0;) {
        a += from;
        b += from;
        unsigned before = 0, after = 0;
        int w;
        if (a > 0)
            tui_char(text + tui_prev_char(text, a), a - tui_prev_char(text, a), &before, &w);
        if (b < n)
            tui_char(text + b, n - b, &after, &w);
        if (!word_cp(before) && !word_cp(after))
            return 1;
        from = tui_next_char(text, n, a);
    }
    return 0;
}

void tui_date_line(const struct tm *tm, char *out, size_t cap) {
    static const char *const days[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday",
                                       "Friday", "Saturday"};
    static const char *const months[] = {"January", "February", "March", "April", "May", "June",
                                         "July", "August", "September", "October", "November",
                                         "December"};
    snprintf(out, cap, "-- %s, %d %s %d --", days[(tm->tm_wday % 7 + 7) % 7], tm->tm_mday,
             months[(tm->tm_mon % 12 + 12) % 12], tm->tm_year + 1900);
}

/* ---- wrapping ----
 *
 * Words are runs of characters between spaces (a no-break space is part
 * of a word).  A word that fits a row is never split: it moves to the
 * next row whole.  One wider than any row is cut, at the best place that
 * fits: after its opening or before its closing punctuation (so
 * "ab12-...-ef56," keeps a fingerprint whole), else after a '-' or '/' (a
 * fingerprint's groups, a path's parts), else between any two
 * characters; the rest goes on as a word of its own on the next row. */

enum { CUT_PUNCT = 1, CUT_HYPHEN, CUT_CHAR, CUT_FORCED };

static int is_opening(unsigned cp) {
    return cp == '(' || cp == '[' || cp == '{' || cp == '"' || cp == '\'';
}

static int is_closing(unsigned cp) {
    return cp && cp < 0x80 && strchr(",.;:!?)]}\"'", (int)cp) != NULL;
}

/* Past this many columns beyond the room, a word is not measured on: its
 * closing punctuation could not bring it back. */
#define WRAP_SLACK 8

static int word_char(const char *s, size_t i, size_t n) { return i < n && s[i] != ' ' && s[i] != '\n'; }

/* The width of the word at s[a] and its end in *b, or more than cols
 * (*b then unset) when it does not fit cols. */
static int word_width(const char *s, size_t a, size_t n, int cols, size_t *b) {
    int w = 0;
    size_t i = a;
    while (word_char(s, i, n) && w <= cols) {
        unsigned cp;
        int cw;
        i += tui_char(s + i, n - i, &cp, &cw);
        w += cw;
    }
    *b = i;
    return w;
}

/* Where to cut the word at s[a] for room columns: returns the end of the
 * part that goes first, *pw its width, *level how good the place (CUT_*,
 * lower is better; CUT_FORCED: one character that does not fit). */
static size_t word_cut(const char *s, size_t a, size_t n, int room, int *pw, int *level) {
    size_t i = a, lead = 0, hyph = 0, chr = 0, core = a;
    int w = 0, lead_w = 0, hyph_w = 0, chr_w = 0, core_w = 0, leading = 1;
    while (word_char(s, i, n) && w <= room + WRAP_SLACK) {
        unsigned cp;
        int cw;
        i += tui_char(s + i, n - i, &cp, &cw);
        w += cw;
        leading = leading && is_opening(cp);
        if (w > room)
            ;
        else if (leading)
            lead = i, lead_w = w;
        else if (cp == '-' || cp == '/')
            hyph = i, hyph_w = w;
        if (w <= room)
            chr = i, chr_w = w;
        if (!is_closing(cp))
            core = i, core_w = w;
    }
    if (!word_char(s, i, n) && core > a && core < i && core_w <= room && !leading) {
        *pw = core_w, *level = CUT_PUNCT;
        return core;
    }
    if (lead) {
        *pw = lead_w, *level = CUT_PUNCT;
        return lead;
    }
    if (hyph) {
        *pw = hyph_w, *level = CUT_HYPHEN;
        return hyph;
    }
    if (chr) {
        *pw = chr_w, *level = CUT_CHAR;
        return chr;
    }
    unsigned cp;
    *level = CUT_FORCED;
    return a + tui_char(s + a, n - a, &cp, pw);
}

void tui_wrap_start(tui_wrap *w, const char *s, size_t n, int cols, int indent) {
    w->s = s;
    w->n = n;
    w->pos = 0;
    w->cols = cols > 0 ? cols : 1;
    w->indent = indent > 0 && indent < w->cols ? indent : 0;
    w->first = 1;
    w->done = 0;
}

int tui_wrap_next(tui_wrap *w, size_t *start, size_t *end, int *col) {
    if (w->done)
        return 0;
    const char *s = w->s;
    size_t n = w->n, q = w->pos;
    int cols = w->cols, c = w->first ? 0 : w->indent;
    int used = c, placed = 0;
    w->first = 0;
    *start = q;
    for (;;) {
        size_t a = q, b;
        int sw = 0;
        while (a < n && s[a] == ' ')
            a++, sw++;
        if (a == n || s[a] == '\n') {
            /* The end of a line: spaces before it are not drawn; the row
             * after a '\n' keeps its leading spaces (they are the text's). */
            *end = q;
            if (a == n)
                w->done = 1;
            else
                w->pos = a + 1;
            break;
        }
        if (!placed && sw && used + sw >= cols) {
            q = *start = a; /* a line's own leading spaces that leave no room */
            continue;
        }
        int ww = word_width(s, a, n, cols, &b);
        if (ww <= cols && used + sw + ww <= cols) {
            used += sw + ww;
            q = b;
            placed = 1;
            continue;
        }
        if (ww <= cols && placed) {
            *end = q; /* wrapped: the spaces at the break are neither here nor there */
            w->pos = a;
            break;
        }
        if (ww <= cols) {
            /* Too wide past the hanging indent but not for a row: the row
             * starts further left, so the word stays whole. */
            c = cols - ww;
            *start = a;
            used = cols;
            q = b;
            placed = 1;
            continue;
        }
        /* Wider than any row: cut here, unless nothing fits here or a
         * fresh row (as far left as it goes) has a better place to cut. */
        int here_w, here_lv, row_w, row_lv;
        size_t here = word_cut(s, a, n, cols - used - sw, &here_w, &here_lv);
        size_t row = word_cut(s, a, n, cols, &row_w, &row_lv);
        if (placed && (row_lv < here_lv || here_lv == CUT_FORCED)) {
            *end = q;
            w->pos = a;
            break;
        }
        if (!placed && row_lv < here_lv) {
            c = cols - row_w;
            *start = a;
            here = row;
        }
        /* The row is full; what follows (the rest of the word) wraps. */
        used = cols;
        q = here;
        placed = 1;
    }
    *col = c;
    return 1;
}
