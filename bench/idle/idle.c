/* The idle-sessions bench's client: N idle POP3 sessions on one mw_loop in
 * one thread (mw_loop_pop3_opts.idle_noop_ms), and what they cost.
 *
 *     idle HOST PORT N tls|plain CAFILE HOLD_SECONDS NOOP_MS
 *
 * Adds N sessions, runs the loop until all are logged in, then measures:
 * the process's resident memory grown since before the first session
 * (VmRSS), and, apart, the bytes OpenSSL holds (its allocations counted
 * through CRYPTO_set_mem_functions).  Then holds them HOLD_SECONDS, so the
 * NOOP timers fire, and says how many are still up.  One JSON line.  Not a
 * test. */
#include <mailwire/loop.h>

#include <malloc.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* OpenSSL's live bytes: each block carries its size in front. */
static atomic_llong ossl_live;

typedef union hdr {
    size_t n;
    max_align_t align;
} hdr;

static void *ossl_malloc(size_t n, const char *f, int l)
{
    (void)f;
    (void)l;
    hdr *h = malloc(sizeof *h + n);
    if (!h) return NULL;
    h->n = n;
    ossl_live += (long long)n;
    return h + 1;
}

static void *ossl_realloc(void *p, size_t n, const char *f, int l)
{
    if (!p) return ossl_malloc(n, f, l);
    hdr *h = (hdr *)p - 1;
    size_t old = h->n;
    hdr *nh = realloc(h, sizeof *nh + n);
    if (!nh) return NULL;
    nh->n = n;
    ossl_live += (long long)n - (long long)old;
    return nh + 1;
}

static void ossl_free(void *p, const char *f, int l)
{
    (void)f;
    (void)l;
    if (!p) return;
    hdr *h = (hdr *)p - 1;
    ossl_live -= (long long)h->n;
    free(h);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static size_t logged, ended;

static void on_trace(int dir, const char *line, size_t len, void *ud)
{
    (void)ud;
    static const char to_idle[] = "-> idle";
    if (dir == MW_TRACE_INFO && len >= sizeof to_idle - 1 &&
        !memcmp(line + len - (sizeof to_idle - 1), to_idle, sizeof to_idle - 1))
        logged++;
}

static void on_done(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    (void)job;
    *(mw_loop_job **)ud = NULL; /* freed when this returns */
    if (ended++ < 3 && r->code != MW_ECANCELED)
        fprintf(stderr, "a session ended: %s\n", r->err->message);
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: idle HOST PORT N tls|plain CAFILE HOLD_SECONDS NOOP_MS\n");
        return 2;
    }
    if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) {
        fprintf(stderr, "OpenSSL allocated before main: cannot count its memory\n");
        return 1;
    }
    size_t n = strtoul(argv[3], NULL, 10);
    int tls = !strcmp(argv[4], "tls");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    mw_loop *loop = NULL;
    mw_error err;
    if (mw_loop_new(&loop, NULL, &err)) return 1;
    mw_loop_job **jobs = calloc(n, sizeof *jobs);
    long rss0 = rss_kb();
    long long ossl0 = ossl_live;
    mw_tls_opts to = MW_TLS_OPTS_INIT;
    to.ca_file = argv[5];
    for (size_t i = 0; i < n; i++) {
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.host = argv[1];
        o.port = (unsigned)strtoul(argv[2], NULL, 10);
        o.tls = tls ? MW_TLS_IMPLICIT : MW_TLS_NONE;
        o.tls_opts = tls ? &to : NULL;
        o.allow_plaintext = !tls;
        o.user = "idle";
        o.password = "secret";
        o.idle_noop_ms = atoi(argv[7]);
        o.connect_timeout_ms = 600000;
        o.io_timeout_ms = 600000;
        o.trace = on_trace;
        if (mw_loop_add_pop3_fetch(loop, &jobs[i], &o, on_done, &jobs[i], &err)) {
            fprintf(stderr, "session %zu: %s\n", i + 1, err.message);
            return 1;
        }
    }
    int64_t until = mw_now_ms() + 600000; /* a bound, not a measurement */
    while (logged + ended < n && mw_now_ms() < until)
        mw_loop_run(loop, mw_now_ms() + 100, NULL);
    long rss1 = rss_kb();
    long long ossl1 = ossl_live;
    /* What the handshakes' short-lived allocations left in the heap, given
     * back (glibc: free pages anywhere in the heap). */
    malloc_trim(0);
    long rss2 = rss_kb();
    size_t up = logged;
    int64_t hold = mw_now_ms() + atoi(argv[6]) * 1000LL;
    while (mw_now_ms() < hold)
        mw_loop_run(loop, hold, NULL);
    size_t still = mw_loop_running(loop);
    double per = up ? (double)(rss1 - rss0) / (double)up : 0;
    double trimmed = up ? (double)(rss2 - rss0) / (double)up : 0;
    double ossl_per = up ? (double)(ossl1 - ossl0) / 1024.0 / (double)up : 0;
    printf("{\"mode\":\"%s\",\"sessions\":%zu,\"logged_in\":%zu,\"rss_kb_per_session\":%.1f,"
           "\"rss_kb_per_session_after_trim\":%.1f,\"openssl_live_kb_per_session\":%.1f,"
           "\"rest_kb_per_session_after_trim\":%.1f,\"running_after_hold\":%zu}\n",
           tls ? "tls" : "plain", n, up, per, trimmed, ossl_per, trimmed - ossl_per, still);
    mw_loop_free(loop); /* closes the sessions left, without QUIT */
    free(jobs);
    return up == n ? 0 : 1;
}
