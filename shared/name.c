/* name: validation and case folding of usernames.  Folding uses the C.UTF-8
 * locale's simple lowercase mapping so "Émile" and "éMILE" are one name on
 * every machine, whatever the user's own locale is. */
#include "name.h"

#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <uv.h>
#include <wctype.h>

size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
    if (n == 0)
        return 0;
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

size_t utf8_encode(unsigned c, char *out) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    } else if (c < 0x800) {
        out[0] = (char)(0xc0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    } else if (c < 0x10000) {
        out[0] = (char)(0xe0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* Created once and never changed: a constant in all but name. */
static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;
static void utf8_locale_init(void) {
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Unicode White_Space. */
static int is_space(unsigned c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0d) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* The invisible formatting characters that would let two names look
 * identical: the zero-width marks (U+200B..200D, the word joiner and the
 * invisible operators U+2060..2064, U+FEFF) and every Bidi_Control
 * character (LRM/RLM, the embeddings and overrides, the isolates
 * U+2066..2069 and the Arabic letter mark U+061C). */
static int is_invisible(unsigned c) {
    return (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) ||
           (c >= 0x2060 && c <= 0x2064) || (c >= 0x2066 && c <= 0x2069) || c == 0xfeff ||
           c == 0x061c;
}

int name_check(const char *s, size_t len, const char **why) {
    const char *dummy;
    if (!why)
        why = &dummy;
    if (len == 0) {
        *why = "name is empty";
        return UV_EINVAL;
    }
    size_t chars = 0;
    for (size_t i = 0; i < len;) {
        unsigned c;
        size_t n = utf8_decode((const unsigned char *)s + i, len - i, &c);
        if (n == 0) {
            *why = "name is not valid UTF-8";
            return UV_EINVAL;
        }
        if (c < 0x20 || (c >= 0x7f && c < 0xa0)) {
            *why = "name contains a control character";
            return UV_EINVAL;
        }
        if (is_space(c)) {
            *why = "name contains whitespace";
            return UV_EINVAL;
        }
        if (is_invisible(c)) {
            *why = "name contains an invisible or formatting character";
            return UV_EINVAL;
        }
        i += n;
        if (++chars > NAME_MAX_CHARS) {
            *why = "name is longer than 32 characters";
            return UV_EINVAL;
        }
    }
    return 0;
}

int utf8_fold(const char *s, size_t len, char *out, size_t cap) {
    pthread_once(&utf8_once, utf8_locale_init);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned c = (unsigned char)s[i];
        if (c < 0x80) { /* C.UTF-8 lowercases ASCII as ASCII does; most names are ASCII */
            if (o + 1 >= cap)
                return UV_ENOBUFS;
            out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            i++;
            continue;
        }
        size_t n = utf8_decode((const unsigned char *)s + i, len - i, &c);
        if (n == 0)
            return UV_EINVAL;
        i += n;
        unsigned f;
        if (utf8_locale)
            f = (unsigned)towlower_l((wint_t)c, utf8_locale);
        else
            f = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        if (f > 0x10ffff || (f >= 0xd800 && f <= 0xdfff))
            f = c;
        char enc[4];
        size_t k = utf8_encode(f, enc);
        if (o + k >= cap)
            return UV_ENOBUFS;
        memcpy(out + o, enc, k);
        o += k;
    }
    if (cap == 0)
        return UV_ENOBUFS;
    out[o] = '\0';
    return 0;
}

int name_fold(const char *s, size_t len, char out[NAME_BUFLEN]) {
    if (name_check(s, len, NULL))
        return UV_EINVAL;
    /* 32 code points of at most 4 bytes each: it always fits */
    return utf8_fold(s, len, out, NAME_BUFLEN);
}

size_t utf8_clean(const char *in, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned c;
        size_t k = utf8_decode((const unsigned char *)in + i, n - i, &c);
        int ok = k > 0 && c >= 0x20 && !(c >= 0x7f && c < 0xa0);
        size_t w = ok ? k : 1;
        if (o + w >= cap)
            break;
        if (ok)
            memcpy(out + o, in + i, k);
        else
            out[o] = '?';
        o += w;
        i += k ? k : 1;
    }
    out[o] = '\0';
    return o;
}
