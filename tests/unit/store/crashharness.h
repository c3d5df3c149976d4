/* A crash-safety harness: runs a worker in a child process, SIGKILLs it at
 * random moments, and after each kill runs a checker in the parent that
 * must find the durable state consistent ("everything recorded as delivered
 * is fully present").  Reusable for `mailwire fetch` against a server:
 * the worker is then a fetch run and the checker compares the Maildir with
 * the server's messages.
 *
 * The random moments come from a seed printed as a TAP comment; set
 * MW_CRASH_SEED to replay a run. */
#ifndef MW_CRASHHARNESS_H
#define MW_CRASHHARNESS_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct crash_ops {
    /* In the child: do the work; return 0 when everything was done. */
    int (*worker)(void *ud);
    /* In the parent after each kill (and after the final run): 0 when the
     * durable state is consistent, else write why into why. complete is 1
     * after a run that finished (then everything must be there). */
    int (*check)(void *ud, int complete, char *why, size_t size);
    /* In the parent when a worker finished before being killed: start the
     * scenario again from scratch so later kills still hit work. */
    void (*reset)(void *ud);
    void *ud;
} crash_ops;

typedef struct crash_result {
    unsigned seed;
    int kills;           /* workers killed mid-run */
    int completed;       /* workers that finished before their kill */
    int64_t full_run_us; /* calibration: one uninterrupted run */
    char why[512];       /* the first inconsistency found */
} crash_result;

static inline uint64_t crash_rand(uint64_t *s)
{
    /* xorshift64*: reproducible from the seed on every platform */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static inline int64_t crash_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Runs one worker; kill_after_us < 0: let it finish.  Returns 1 when it
 * was killed, 0 when it finished with 0, -1 when it failed on its own. */
static inline int crash_one(const crash_ops *ops, int64_t kill_after_us)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) _exit(ops->worker(ops->ud) == 0 ? 0 : 3);
    int status;
    if (kill_after_us >= 0) {
        int64_t end = crash_now_us() + kill_after_us;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
            int64_t left = end - crash_now_us();
            if (left <= 0) break;
            struct timespec ts = {0, (long)(left > 200 ? 200 : left) * 1000L};
            nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Calibrates with one full run, then kills `kills` workers at moments
 * uniformly spread over that run's length, checking after each; ends with
 * a complete run and a final check.  Returns 0 or -1 (why in res). */
static inline int crash_run(const crash_ops *ops, int kills, crash_result *res)
{
    memset(res, 0, sizeof *res);
    const char *env = getenv("MW_CRASH_SEED");
    res->seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)(time(NULL) ^ (getpid() << 8));
    printf("# crash harness seed %u (set MW_CRASH_SEED=%u to replay)\n", res->seed, res->seed);
    uint64_t rng = (uint64_t)res->seed * 0x9E3779B97F4A7C15ull + 1;

    ops->reset(ops->ud);
    int64_t t0 = crash_now_us();
    if (crash_one(ops, -1) != 0) {
        snprintf(res->why, sizeof res->why, "the calibration run failed on its own");
        return -1;
    }
    res->full_run_us = crash_now_us() - t0;
    if (ops->check(ops->ud, 1, res->why, sizeof res->why) != 0) return -1;
    ops->reset(ops->ud);
    while (res->kills < kills) {
        int64_t at = (int64_t)(crash_rand(&rng) % (uint64_t)(res->full_run_us + 1));
        int r = crash_one(ops, at);
        if (r < 0) {
            snprintf(res->why, sizeof res->why, "a worker failed on its own (after %d kills)",
                     res->kills);
            return -1;
        }
        if (ops->check(ops->ud, r == 0, res->why, sizeof res->why) != 0) return -1;
        if (r == 1) {
            res->kills++;
        } else {
            res->completed++;
            ops->reset(ops->ud);
        }
    }
    if (crash_one(ops, -1) != 0) {
        snprintf(res->why, sizeof res->why, "the final run failed on its own");
        return -1;
    }
    return ops->check(ops->ud, 1, res->why, sizeof res->why);
}

#endif
