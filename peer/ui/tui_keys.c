/* tui_keys: what each key and mouse event does.  Two focuses: the input
 * line (the default) and the users panel (Tab on an empty line, or F2).
 * Keys that make sense everywhere (PgUp/PgDn, the wheel, Ctrl-L) work in
 * both.  A bracketed paste is inserted as text, newlines included, and is
 * sent as one message only when Enter is pressed afterwards. */
#include "tui_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TUI_CTRL(c) ((c)&0x1f)

static void scroll_pane(tui *t, int rows) {
    tui_conv *cv = tui_here(t);
    cv->scroll += rows;
    if (cv->scroll < 0)
        cv->scroll = 0; /* the upper clamp needs the layout: tui_draw.c */
    tui_dirty(t);
}

static int page(const tui *t) { return t->pane_body_h > 2 ? t->pane_body_h - 1 : 1; }

static void panel_open_selected(tui *t) {
    int idx[1024];
    int n = tui_panel_list(t, idx, 1024);
    if (t->sel < 0 || t->sel >= n)
        return;
    char name[NAME_BUFLEN];
    strcpy(name, t->users[idx[t->sel]].name); /* the array may move */
    t->focus = FOCUS_INPUT;
    t->filter[0] = '\0';
    tui_open_conv(t, name);
}

static void panel_key(tui *t, int is_code, wint_t ch) {
    int idx[1024];
    int n = tui_panel_list(t, idx, 1024);
    if (is_code) {
        switch (ch) {
        case KEY_UP: t->sel--; break;
        case KEY_DOWN: t->sel++; break;
        case KEY_HOME: t->sel = 0; break;
        case KEY_END: t->sel = n - 1; break;
        case KEY_ENTER: panel_open_selected(t); return;
        case KEY_BACKSPACE: {
            size_t k = tui_prev_char(t->filter, strlen(t->filter));
            t->filter[k] = '\0';
            t->sel = 0;
            break;
        }
        case KEY_F(2): t->focus = FOCUS_INPUT; break;
        default: return;
        }
    } else if (ch == '\r' || ch == '\n') {
        panel_open_selected(t);
        return;
    } else if (ch == '\t' || ch == 27) {
        t->focus = FOCUS_INPUT;
        t->filter[0] = '\0';
    } else if (ch == 127 || ch == TUI_CTRL('h')) {
        size_t k = tui_prev_char(t->filter, strlen(t->filter));
        t->filter[k] = '\0';
        t->sel = 0;
    } else if (ch > ' ' && ch != 127) {
        char mb[8];
        int k = wctomb(mb, (wchar_t)ch);
        size_t fl = strlen(t->filter);
        if (k > 0 && fl + (size_t)k < sizeof t->filter) {
            memcpy(t->filter + fl, mb, (size_t)k);
            t->filter[fl + (size_t)k] = '\0';
            t->sel = 0;
        }
    }
    n = tui_panel_list(t, idx, 1024);
    if (t->sel >= n)
        t->sel = n - 1;
    if (t->sel < 0)
        t->sel = 0;
    tui_dirty(t);
}

static void submit(tui *t) {
    tui_input *in = &t->in;
    char line[TUI_INPUT_MAX + 1];
    size_t len = in->len;
    memcpy(line, in->buf, len + 1);
    tui_in_remember(in);
    tui_in_clear(in);
    tui_submit(t, line, len);
}

static void input_key(tui *t, int is_code, wint_t ch) {
    tui_input *in = &t->in;
    if (is_code) {
        switch (ch) {
        case KEY_LEFT: tui_in_left(in); break;
        case KEY_RIGHT: tui_in_right(in); break;
        case KEY_HOME: tui_in_home(in); break;
        case KEY_END: tui_in_end(in); break;
        case KEY_BACKSPACE: tui_in_backspace(in); break;
        case KEY_DC: tui_in_delete(in); break;
        case KEY_UP: tui_in_history(in, -1); break;
        case KEY_DOWN: tui_in_history(in, +1); break;
        case KEY_ENTER:
            if (t->pasting)
                tui_in_insert(in, "\n", 1);
            else
                submit(t);
            break;
        case KEY_F(2):
            t->focus = FOCUS_PANEL;
            break;
        default: return;
        }
        tui_dirty(t);
        return;
    }
    switch (ch) {
    case '\r':
    case '\n':
        if (t->pasting)
            tui_in_insert(in, "\n", 1); /* a pasted newline stays in the line */
        else
            submit(t);
        break;
    case '\t':
        if (t->pasting)
            tui_in_insert(in, " ", 1);
        else if (in->len == 0)
            t->focus = FOCUS_PANEL;
        else
            tui_in_complete(t);
        break;
    case 127:
    case TUI_CTRL('h'): tui_in_backspace(in); break;
    case TUI_CTRL('a'): tui_in_home(in); break;
    case TUI_CTRL('e'): tui_in_end(in); break;
    case TUI_CTRL('u'): tui_in_clear(in); break;
    case TUI_CTRL('l'): clearok(curscr, TRUE); break;
    case 27: break; /* a lone Esc */
    default:
        if (ch >= ' ') {
            char mb[8];
            int k = wctomb(mb, (wchar_t)ch);
            if (k > 0 && in->len + (size_t)k > TUI_INPUT_MAX) {
                if (!t->notice[0]) /* once, not once per key held down */
                    tui_notice(t, NULL, NOTE_OTHER, NULL, "the input line is full: a message is "
                               "at most %d bytes", TUI_INPUT_MAX);
            } else if (k > 0)
                tui_in_insert(in, mb, (size_t)k);
        }
        break;
    }
    tui_dirty(t);
}

/* Our own SGR mouse parser (terminfo without kmous=\E[<): after \E[< come
 * "B;X;Y" and M (press) or m (release), 1-based columns and rows. */
static int sgr_feed(tui *t, wint_t ch) {
    if (ch >= '0' && ch <= '9') {
        int i = t->sgr_state - 1;
        if (t->sgr_num[i] < 100000)
            t->sgr_num[i] = t->sgr_num[i] * 10 + (int)(ch - '0');
        return 1;
    }
    if (ch == ';' && t->sgr_state < 3) {
        t->sgr_state++;
        return 1;
    }
    int done = (ch == 'M' || ch == 'm') && t->sgr_state == 3;
    t->sgr_state = 0;
    if (!done)
        return 0; /* not a mouse report after all: treat ch as a key */
    int b = t->sgr_num[0];
    if (ch == 'M' && !(b & 32)) { /* presses only, no motion */
        int button = (b & 64) ? ((b & 1) ? 5 : 4) : (b & 3) + 1;
        tui_mouse(t, button, t->sgr_num[1] - 1, t->sgr_num[2] - 1, 1);
    }
    return 1;
}

void tui_key(tui *t, int is_code, wint_t ch) {
    if (t->sgr_state) {
        if (!is_code && sgr_feed(t, ch))
            return;
    }
    if (is_code) {
        switch (ch) {
        case TUI_KEY_SGR_MOUSE:
            t->sgr_state = 1;
            memset(t->sgr_num, 0, sizeof t->sgr_num);
            return;
        case TUI_KEY_PASTE_BEGIN: t->pasting = 1; return;
        case TUI_KEY_PASTE_END:
            t->pasting = 0;
            tui_dirty(t);
            return;
        case KEY_PPAGE: scroll_pane(t, page(t)); return;
        case KEY_NPAGE: scroll_pane(t, -page(t)); return;
        case KEY_RESIZE: return; /* handled on SIGWINCH */
        }
    }
    if (t->pasting) {
        t->focus = FOCUS_INPUT; /* a paste is always text for the input line */
        input_key(t, is_code, ch);
        return;
    }
    if (t->focus == FOCUS_PANEL)
        panel_key(t, is_code, ch);
    else
        input_key(t, is_code, ch);
}

void tui_mouse(tui *t, int button, int x, int y, int press) {
    if (!press)
        return;
    if (button == 4 || button == 5) {
        scroll_pane(t, button == 4 ? 3 : -3);
        return;
    }
    if (button != 1)
        return;
    if (x < t->panel_w && y >= 0 && y < (int)(sizeof t->panel_map / sizeof *t->panel_map) &&
        t->panel_map[y] >= 0 && (size_t)t->panel_map[y] < t->nusers) {
        char name[NAME_BUFLEN];
        strcpy(name, t->users[t->panel_map[y]].name);
        t->focus = FOCUS_INPUT;
        tui_open_conv(t, name);
        tui_dirty(t);
        return;
    }
    if (x >= t->panel_w) { /* a click elsewhere: back to typing */
        t->focus = FOCUS_INPUT;
        tui_dirty(t);
    }
}
