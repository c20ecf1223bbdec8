/* verify: the yardstick of figure 1's registrations (tools/bench/bench.py).
 * A durable registration must check one Ed25519 signature, so the
 * crypto_sign_verify_detached calls one core does per second are its
 * ceiling on that core.  This runs exactly that call, single-threaded, over
 * messages shaped like a register's (docs/PROTOCOL.md: the context string,
 * its NUL, the 32-byte nonce and a short name), each signed by its own key,
 * and prints one key=value line as the load generator does:
 *   verify [--duration S] [--warmup S]
 *   ops=N secs=S ops_per_s=R cpu_us_per_op=U
 * (U: CPU time per call, which a shared machine's other load does not
 * stretch the way it stretches the wall-clock rate R). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYS 64 /* rotating keys, so no one key's work stays in the caches */

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }

typedef struct item {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sig[crypto_sign_BYTES];
    unsigned char m[96];
    size_t mlen;
} item;

/* Verifies for secs seconds; the number of calls.  Every call must succeed:
 * a failure means the tool measures something else than the tracker does. */
static unsigned long run(const item *it, double secs) {
    unsigned long n = 0;
    double end = now() + secs;
    do {
        for (int i = 0; i < KEYS; i++, n++)
            if (crypto_sign_verify_detached(it[i].sig, it[i].m, it[i].mlen, it[i].pk) != 0) {
                fprintf(stderr, "verify: a valid signature did not verify\n");
                exit(1);
            }
    } while (now() < end);
    return n;
}

int main(int argc, char **argv) {
    double duration = 2.0, warmup = 0.5;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--duration") == 0)
            duration = atof(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--warmup") == 0)
            warmup = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: verify [--duration S] [--warmup S]\n");
            return 2;
        }
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "verify: sodium_init failed\n");
        return 1;
    }
    static item it[KEYS];
    static const char ctx[] = "parley-register-v1"; /* shared/identity.c's REG_CTX */
    for (int i = 0; i < KEYS; i++) {
        unsigned char sk[crypto_sign_SECRETKEYBYTES];
        crypto_sign_keypair(it[i].pk, sk);
        memcpy(it[i].m, ctx, sizeof ctx); /* with its NUL */
        size_t n = sizeof ctx;
        randombytes_buf(it[i].m + n, 32);
        n += 32;
        n += (size_t)snprintf((char *)it[i].m + n, sizeof it[i].m - n, "r0-%d", 1000 + i);
        it[i].mlen = n;
        crypto_sign_detached(it[i].sig, NULL, it[i].m, it[i].mlen, sk);
    }
    if (warmup > 0)
        run(it, warmup);
    double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    unsigned long n = run(it, duration);
    double secs = now() - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("ops=%lu secs=%.3f ops_per_s=%.0f cpu_us_per_op=%.2f\n", n, secs, (double)n / secs,
           cpu * 1e6 / (double)n);
    return 0;
}
