/* keycache: a singly linked list of users keyed by folded name.  Lookups
 * come one per command or chat link, so a scan is cheaper to keep right
 * than a hash table would be to keep small. */
#include "keycache.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct kc_entry {
    struct kc_entry *next;
    char fold[NAME_BUFLEN];
    ctl_user user;
} kc_entry;

struct keycache {
    kc_entry *head;
};

int kc_open(keycache **out) {
    keycache *kc = calloc(1, sizeof *kc);
    if (!kc)
        return UV_ENOMEM;
    *out = kc;
    return 0;
}

static kc_entry *find_fold(const keycache *kc, const char *fold) {
    for (kc_entry *e = kc->head; e; e = e->next)
        if (strcmp(e->fold, fold) == 0)
            return e;
    return NULL;
}

static kc_entry *find_name(const keycache *kc, const char *name) {
    char fold[NAME_BUFLEN];
    if (name_fold(name, strlen(name), fold))
        return NULL;
    return find_fold(kc, fold);
}

void kc_put(keycache *kc, const ctl_user *u) {
    char fold[NAME_BUFLEN];
    if (name_fold(u->name, strlen(u->name), fold))
        return;
    kc_entry *e = find_fold(kc, fold);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e)
            return;
        strcpy(e->fold, fold);
        e->next = kc->head;
        kc->head = e;
    }
    e->user = *u;
}

const ctl_user *kc_find(const keycache *kc, const char *name) {
    kc_entry *e = find_name(kc, name);
    return e ? &e->user : NULL;
}

void kc_set_online(keycache *kc, const char *name, bool online) {
    kc_entry *e = find_name(kc, name);
    if (e)
        e->user.online = online;
}

void kc_close(keycache *kc) {
    if (!kc)
        return;
    while (kc->head) {
        kc_entry *e = kc->head;
        kc->head = e->next;
        free(e);
    }
    free(kc);
}
