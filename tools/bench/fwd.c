/* fwd: the strong forwarder of figure 4, the yardstick the tracker's
 * relay is held to (tools/bench/bench.py).  Plain epoll, no libuv: it
 * accepts on 127.0.0.1:LISTEN, dials 127.0.0.1:TARGET for each connection
 * and moves bytes both ways through one 256 KiB buffer per direction
 * (--splice: through a pipe per direction with splice(2), so the bytes
 * never enter user space).  Level-triggered; interest changes only when a
 * buffer fills or drains.  No protocol, no limits: the most a single-
 * threaded forwarder can do on this machine.
 *   fwd [--splice] LISTEN_PORT TARGET_PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CAP (256 * 1024)

typedef struct dir {
    int from, to;
    char *buf;       /* copy mode */
    size_t len, off; /* bytes in buf; of those, written */
    int pipe[2];     /* splice mode */
    size_t inpipe;
    int eof, done;
} dir;

typedef struct pair {
    int fd[2];
    dir d[2];         /* d[0]: fd[0] -> fd[1]; d[1]: fd[1] -> fd[0] */
    uint32_t mask[2]; /* what epoll watches on fd[i] now */
} pair;

typedef struct tag {
    pair *p;
    int i;
} tag;

static int use_splice;
static int ep;
static tag gone; /* an event of a pair freed earlier in the batch */

static int pending(const dir *d) { return use_splice ? d->inpipe > 0 : d->off < d->len; }
static int room(const dir *d) { return !d->eof && (use_splice ? d->inpipe < CAP : d->len == 0); }

/* Moves what it can without blocking; 0, or -1 when the pair must close. */
static int pump(dir *d) {
    for (;;) {
        int moved = 0;
        if (room(d)) {
            ssize_t n;
            if (use_splice)
                n = splice(d->from, NULL, d->pipe[1], NULL, CAP - d->inpipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                n = read(d->from, d->buf, CAP);
            if (n > 0) {
                if (use_splice)
                    d->inpipe += (size_t)n;
                else
                    d->len = (size_t)n, d->off = 0;
                moved = 1;
            } else if (n == 0) {
                d->eof = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                return -1;
            }
        }
        if (pending(d)) {
            ssize_t n;
            if (use_splice)
                n = splice(d->pipe[0], NULL, d->to, NULL, d->inpipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                n = write(d->to, d->buf + d->off, d->len - d->off);
            if (n > 0) {
                if (use_splice) {
                    d->inpipe -= (size_t)n;
                } else if ((d->off += (size_t)n) == d->len) {
                    d->off = d->len = 0;
                }
                moved = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                return -1;
            }
        }
        if (d->eof && !pending(d) && !d->done) {
            shutdown(d->to, SHUT_WR);
            d->done = 1;
        }
        if (!moved)
            return 0;
    }
}

static void watch(pair *p, tag *t) {
    for (int i = 0; i < 2; i++) {
        /* fd[i] is read by d[i] and written by d[1 - i]. */
        uint32_t m = (room(&p->d[i]) ? EPOLLIN : 0) | (pending(&p->d[1 - i]) ? EPOLLOUT : 0);
        if (m != p->mask[i]) {
            struct epoll_event ev = {.events = m, .data.ptr = &t[i]};
            epoll_ctl(ep, EPOLL_CTL_MOD, p->fd[i], &ev);
            p->mask[i] = m;
        }
    }
}

static void pair_free(pair *p, tag *t) {
    for (int i = 0; i < 2; i++) {
        close(p->fd[i]);
        free(p->d[i].buf);
        if (use_splice) {
            close(p->d[i].pipe[0]);
            close(p->d[i].pipe[1]);
        }
    }
    free(t);
    free(p);
}

static int nodelay_nonblock(int fd) {
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void start(int cfd, const struct sockaddr_in *target) {
    int tfd = socket(AF_INET, SOCK_STREAM, 0);
    if (tfd < 0 || connect(tfd, (const struct sockaddr *)target, sizeof *target) != 0) {
        perror("fwd: connect to the target");
        close(cfd);
        if (tfd >= 0)
            close(tfd);
        return;
    }
    pair *p = calloc(1, sizeof *p);
    tag *t = calloc(2, sizeof *t);
    if (!p || !t) {
        fprintf(stderr, "fwd: out of memory\n");
        exit(1);
    }
    p->fd[0] = cfd, p->fd[1] = tfd;
    for (int i = 0; i < 2; i++) {
        nodelay_nonblock(p->fd[i]);
        dir *d = &p->d[i];
        d->from = p->fd[i], d->to = p->fd[1 - i];
        if (use_splice) {
            if (pipe2(d->pipe, O_NONBLOCK) != 0) {
                perror("fwd: pipe");
                exit(1);
            }
            fcntl(d->pipe[1], F_SETPIPE_SZ, CAP);
        } else if (!(d->buf = malloc(CAP))) {
            fprintf(stderr, "fwd: out of memory\n");
            exit(1);
        }
        t[i].p = p, t[i].i = i;
        p->mask[i] = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &t[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, p->fd[i], &ev);
    }
}

int main(int argc, char **argv) {
    int a = 1;
    if (argc > 1 && strcmp(argv[1], "--splice") == 0)
        use_splice = 1, a++;
    if (argc - a != 2) {
        fprintf(stderr, "usage: fwd [--splice] LISTEN_PORT TARGET_PORT\n");
        return 2;
    }
    struct sockaddr_in ls = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[a]))};
    struct sockaddr_in target = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(argv[a + 1]))};
    inet_pton(AF_INET, "127.0.0.1", &ls.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &target.sin_addr);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(lfd, (struct sockaddr *)&ls, sizeof ls) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "fwd: cannot listen on 127.0.0.1:%s: %s\n", argv[a], strerror(errno));
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno != EINTR) {
            perror("fwd: epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            tag *t = evs[k].data.ptr;
            if (t == &gone)
                continue;
            if (!t) {
                int cfd = accept(lfd, NULL, NULL);
                if (cfd >= 0)
                    start(cfd, &target);
                continue;
            }
            pair *p = t->p;
            tag *base = t - t->i;
            if (pump(&p->d[0]) || pump(&p->d[1]) || (p->d[0].done && p->d[1].done)) {
                /* later events of this batch may name the pair */
                for (int j = k + 1; j < n; j++)
                    if (evs[j].data.ptr == &base[0] || evs[j].data.ptr == &base[1])
                        evs[j].data.ptr = &gone;
                pair_free(p, base);
                continue;
            }
            watch(p, base);
        }
    }
}
