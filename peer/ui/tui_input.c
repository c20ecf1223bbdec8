/* tui_input: the input line as an editing buffer.  The cursor is a byte
 * offset that only ever rests on a UTF-8 character boundary, so Left,
 * Right, Backspace and Delete move over whole characters (an accented
 * letter, a CJK glyph, an emoji), never half of one.  History and name
 * completion live here too; drawing is tui_draw.c's job. */
#include "tui_impl.h"

#include <stdlib.h>
#include <string.h>

void tui_in_insert(tui_input *in, const char *s, size_t n) {
    if (in->len + n > TUI_INPUT_MAX) {
        n = TUI_INPUT_MAX - in->len;
        /* full: never cut a character in two */
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    memmove(in->buf + in->cur + n, in->buf + in->cur, in->len - in->cur);
    memcpy(in->buf + in->cur, s, n);
    in->len += n;
    in->cur += n;
    in->buf[in->len] = '\0';
}

void tui_in_left(tui_input *in) { in->cur = tui_prev_char(in->buf, in->cur); }
void tui_in_right(tui_input *in) { in->cur = tui_next_char(in->buf, in->len, in->cur); }
void tui_in_home(tui_input *in) { in->cur = 0; }
void tui_in_end(tui_input *in) { in->cur = in->len; }

void tui_in_backspace(tui_input *in) {
    if (in->cur == 0)
        return;
    size_t p = tui_prev_char(in->buf, in->cur);
    memmove(in->buf + p, in->buf + in->cur, in->len - in->cur);
    in->len -= in->cur - p;
    in->cur = p;
    in->buf[in->len] = '\0';
}

void tui_in_delete(tui_input *in) {
    if (in->cur >= in->len)
        return;
    size_t nx = tui_next_char(in->buf, in->len, in->cur);
    memmove(in->buf + in->cur, in->buf + nx, in->len - nx);
    in->len -= nx - in->cur;
    in->buf[in->len] = '\0';
}

void tui_in_clear(tui_input *in) {
    in->len = in->cur = 0;
    in->buf[0] = '\0';
    in->hpos = in->nhist;
}

static void set_line(tui_input *in, const char *s) {
    size_t n = strlen(s);
    if (n > TUI_INPUT_MAX)
        n = TUI_INPUT_MAX;
    memcpy(in->buf, s, n);
    in->buf[n] = '\0';
    in->len = in->cur = n;
}

void tui_in_history(tui_input *in, int dir) {
    int to = in->hpos + dir;
    if (to < 0 || to > in->nhist)
        return;
    if (in->hpos == in->nhist)
        memcpy(in->saved, in->buf, in->len + 1); /* keep the line being typed */
    in->hpos = to;
    set_line(in, to == in->nhist ? in->saved : in->hist[to]);
}

void tui_in_remember(tui_input *in) {
    if (in->len == 0)
        return;
    if (in->nhist && strcmp(in->hist[in->nhist - 1], in->buf) == 0) {
        in->hpos = in->nhist;
        return; /* no repeats in a row */
    }
    char *copy = strdup(in->buf);
    if (!copy)
        return;
    if (in->nhist == TUI_HISTORY) {
        free(in->hist[0]);
        memmove(in->hist, in->hist + 1, (TUI_HISTORY - 1) * sizeof *in->hist);
        in->nhist--;
    }
    in->hist[in->nhist++] = copy;
    in->hpos = in->nhist;
}

void tui_in_free(tui_input *in) {
    for (int i = 0; i < in->nhist; i++)
        free(in->hist[i]);
    in->nhist = 0;
}

/* Tab: completes the word before the cursor to a known user name (the
 * common prefix when several match, case-insensitively on the folded
 * form); a lone match gets a trailing space, or ": " at the start of a
 * plain line. */
void tui_in_complete(tui *t) {
    tui_input *in = &t->in;
    size_t start = in->cur;
    while (start > 0 && in->buf[start - 1] != ' ' && in->buf[start - 1] != '\n')
        start--;
    size_t wlen = in->cur - start;
    if (wlen == 0 || wlen >= NAME_BUFLEN)
        return;
    char word[NAME_BUFLEN], wfold[NAME_BUFLEN];
    memcpy(word, in->buf + start, wlen);
    word[wlen] = '\0';
    if (name_fold(word, wlen, wfold))
        return;
    const tui_user *first = NULL;
    size_t common = 0;
    int matches = 0;
    for (size_t i = 0; i < t->nusers; i++) {
        const tui_user *u = &t->users[i];
        if (strncmp(u->fold, wfold, strlen(wfold)) != 0 || strcmp(u->fold, t->ctx->user_fold) == 0)
            continue;
        if (!first) {
            first = u;
            common = strlen(u->name);
        } else {
            size_t k = 0;
            while (k < common && u->name[k] == first->name[k])
                k++;
            while (k > 0 && ((unsigned char)first->name[k] & 0xc0) == 0x80)
                k--; /* back to a character boundary */
            common = k;
        }
        matches++;
    }
    if (!first || common < wlen)
        return;
    /* replace the word with the match (its registered spelling) */
    in->cur = start;
    memmove(in->buf + start, in->buf + start + wlen, in->len - start - wlen);
    in->len -= wlen;
    in->buf[in->len] = '\0';
    tui_in_insert(in, first->name, common);
    if (matches == 1)
        tui_in_insert(in, start == 0 ? ": " : " ", start == 0 ? 2 : 1);
}
