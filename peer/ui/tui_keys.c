/* tui_keys: what each key and mouse event does.  Two focuses: the input
 * line (the default) and the users panel (Tab on an empty line, or F2),
 * and a search (Ctrl-R) that borrows the input line.  Keys that make sense
 * everywhere (PgUp/PgDn, the wheel, Alt-1..9 and Alt-Left/Right for the
 * windows, Ctrl-R, the bindings of parley.conf) work in all of them.  A
 * bracketed paste is inserted as text, newlines included, and is sent as
 * one message only when Enter is pressed afterwards.
 *
 * Alt comes as Esc and then the key (xterm's and tmux's metaSendsEscape),
 * which ncurses hands over as two keys; Alt-Left/Right are sequences of
 * their own (\E[1;3D, tui.c defines them).  An Esc followed by nothing
 * in the same read was Esc alone (tui_key_idle).  An escape sequence
 * nobody defined is swallowed whole rather than typed as text. */
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

static int run_action(tui *t, int action) {
    switch (action) {
    case ACT_SEARCH:
        if (t->search.active)
            tui_search_older(t);
        else
            tui_search_start(t, "", 0);
        return 1;
    case ACT_PREV_WINDOW: tui_cycle_window(t, -1); return 1;
    case ACT_NEXT_WINDOW: tui_cycle_window(t, +1); return 1;
    case ACT_CLEAR: tui_clear_window(t); return 1;
    default: return 0;
    }
}

/* A key of parley.conf, or one of the keys every focus has. */
static int global_key(tui *t, int is_code, wint_t ch, int meta) {
    for (int i = 0; i < t->conf.nbinds; i++) {
        const tui_bind *b = &t->conf.binds[i];
        if (b->meta == meta && b->is_code == is_code &&
            (b->ch == ch || (meta && !is_code && ch >= 'A' && ch <= 'Z' && b->ch == ch - 'A' + 'a')))
            return run_action(t, b->action);
    }
    if (meta && !is_code && ch >= '0' && ch <= '9') {
        int num = ch == '0' ? 10 : (int)(ch - '0');
        if (!tui_show_window(t, num))
            tui_flash(t, "no window %d: the windows are 1 (notices) to %d", num, t->nwindows + 1);
        return 1;
    }
    if ((is_code && ch == TUI_KEY_ALT_LEFT) || (meta && is_code && ch == KEY_LEFT))
        return run_action(t, ACT_PREV_WINDOW);
    if ((is_code && ch == TUI_KEY_ALT_RIGHT) || (meta && is_code && ch == KEY_RIGHT))
        return run_action(t, ACT_NEXT_WINDOW);
    if (!meta && !is_code && ch == TUI_CTRL('r'))
        return run_action(t, ACT_SEARCH);
    return 0;
}

/* While searching: the query is typed here. */
static void search_key(tui *t, int is_code, wint_t ch) {
    if (is_code) {
        switch (ch) {
        case KEY_UP: tui_search_older(t); break;
        case KEY_DOWN: tui_search_newer(t); break;
        default: break;
        }
        tui_dirty(t);
        return;
    }
    switch (ch) {
    case '\r':
    case '\n':
        if (t->pasting)
            tui_search_type(t, " ", 1);
        else
            tui_search_stop(t, 1);
        break;
    case 27:
    case TUI_CTRL('g'): tui_search_stop(t, 0); break;
    case 127:
    case TUI_CTRL('h'): tui_search_erase(t); break;
    case TUI_CTRL('u'): /* a new query: from the newest again */
        t->search.qlen = 0;
        t->search.has_hit = 0;
        tui_search_type(t, "", 0);
        break;
    default:
        if (ch >= ' ' || ch == '\t') {
            char mb[8];
            int k = wctomb(mb, (wchar_t)ch);
            if (k > 0)
                tui_search_type(t, mb, (size_t)k);
        }
        break;
    }
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
        case KEY_DC: tui_in_delete(in); break;
        case KEY_UP: tui_in_history(in, -1); break;
        case KEY_DOWN: tui_in_history(in, +1); break;
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

/* Esc alone, in whatever has the keys. */
static void lone_esc(tui *t) {
    if (t->search.active)
        search_key(t, 0, 27);
    else if (t->focus == FOCUS_PANEL)
        panel_key(t, 0, 27);
}

void tui_key_idle(tui *t) {
    if (t->esc) {
        t->esc = 0;
        lone_esc(t);
    }
}

/* The key after an Esc: with Alt.  Returns 1 when it was used up. */
static int meta_key(tui *t, int is_code, wint_t ch) {
    if (!is_code && ch == '[') {
        t->esc_seq = 1; /* CSI: parameters, then one final byte */
        return 1;
    }
    if (!is_code && ch == 'O') {
        t->esc_seq = 2; /* SS3: one byte */
        return 1;
    }
    if (global_key(t, is_code, ch, 1))
        return 1;
    /* Alt and a key nobody uses: nothing, rather than the key alone.  An
     * Esc before a mouse report or a paste was Esc alone. */
    if (is_code && (ch == TUI_KEY_SGR_MOUSE || ch == KEY_MOUSE || ch == TUI_KEY_PASTE_BEGIN)) {
        lone_esc(t);
        return 0;
    }
    return 1;
}

void tui_key(tui *t, int is_code, wint_t ch) {
    if (t->sgr_state) {
        if (!is_code && sgr_feed(t, ch))
            return;
    }
    if (t->esc_seq) {
        if (is_code || ch < 0x20 || ch > 0x7e) {
            t->esc_seq = 0; /* not a sequence after all */
        } else {
            if (t->esc_seq == 2 || (ch >= 0x40 && ch <= 0x7e))
                t->esc_seq = 0; /* its final byte */
            return;
        }
    }
    t->flash[0] = '\0'; /* a passing word lasts until the next key */
    if (!t->pasting) {
        if (!is_code && ch == 27) {
            if (t->esc)
                lone_esc(t); /* Esc Esc: the first was alone */
            t->esc = 1;
            return;
        }
        if (t->esc) {
            t->esc = 0;
            if (meta_key(t, is_code, ch))
                return;
        }
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
    /* Enter and Backspace as codes are the characters, for every focus. */
    if (is_code && (ch == KEY_ENTER || ch == KEY_BACKSPACE)) {
        ch = ch == KEY_ENTER ? '\r' : 127;
        is_code = 0;
    }
    if (t->search.active && t->search.cv != tui_here(t))
        tui_search_stop(t, 1); /* another window came on screen */
    if (!t->pasting && global_key(t, is_code, ch, 0)) {
        tui_dirty(t);
        return;
    }
    if (t->search.active) {
        search_key(t, is_code, ch);
        return;
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
