/* Fetching several POP3 accounts and sending through SMTP, all at once
 * from inside libuv's event loop, with mailwire's loop driven through its
 * descriptor/timeout API (include/mailwire/loop.h, way (a)): libuv watches
 * the descriptors mw_loop_fds names and runs a timer for
 * mw_loop_timeout_ms; every event goes to mw_loop_action, and then the
 * watches are brought up to date.
 *
 *     loop_uv HOST POP3_PORT SMTP_PORT CA_FILE MAILDIR_BASE NOTIFY
 *             USER PASSWORD [USER PASSWORD ...]
 *
 * Each USER's mail goes into MAILDIR_BASE/USER (STLS, verified against
 * CA_FILE; HOST is a numeric address).  Beside each fetch, USER sends a
 * note to the address NOTIFY through the submission server at SMTP_PORT
 * (STARTTLS, AUTH PLAIN).  One line of JSON per job on stdout; exit 0
 * when every job succeeded.
 *
 * libuv must not watch a descriptor that was closed and reused under it,
 * so this example adds every job before the loop starts (no job is added
 * from a callback, where a finished job's descriptor number could come
 * back at once). */
#include <mailwire/loop.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_FD 65536

typedef struct watch {
    uv_poll_t poll;
    int fd, events, seen;
} watch;

static mw_loop *mloop;
static uv_loop_t *uloop;
static uv_timer_t timer;
static watch *watches[MAX_FD];
static int failures;

static void sync_watches(void);

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    watch *w = h->data;
    int ev = ((events & UV_READABLE) ? MW_LOOP_IN : 0) | ((events & UV_WRITABLE) ? MW_LOOP_OUT : 0);
    if (status < 0) ev |= MW_LOOP_ERR;
    mw_loop_action(mloop, w->fd, ev);
    sync_watches();
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    mw_loop_action(mloop, MW_LOOP_TIMEOUT, 0);
    sync_watches();
}

/* Makes libuv watch exactly what mw_loop waits for, and re-arms the timer. */
static void sync_watches(void)
{
    static mw_loop_fd fds[4096];
    size_t n = mw_loop_fds(mloop, fds, sizeof fds / sizeof fds[0]);
    if (n > sizeof fds / sizeof fds[0]) n = sizeof fds / sizeof fds[0];
    for (int fd = 0; fd < MAX_FD; fd++)
        if (watches[fd]) watches[fd]->seen = 0;
    for (size_t i = 0; i < n; i++) {
        int fd = fds[i].fd;
        if (fd < 0 || fd >= MAX_FD) continue;
        int uev = ((fds[i].events & MW_LOOP_IN) ? UV_READABLE : 0) |
                  ((fds[i].events & MW_LOOP_OUT) ? UV_WRITABLE : 0);
        watch *w = watches[fd];
        if (!w) {
            w = calloc(1, sizeof *w);
            if (!w || uv_poll_init_socket(uloop, &w->poll, fd) != 0) {
                free(w);
                continue;
            }
            w->fd = fd;
            w->poll.data = w;
            watches[fd] = w;
        }
        w->seen = 1;
        if (w->events != uev) {
            uv_poll_start(&w->poll, uev, on_poll);
            w->events = uev;
        }
    }
    for (int fd = 0; fd < MAX_FD; fd++) {
        watch *w = watches[fd];
        if (w && !w->seen) {
            uv_poll_stop(&w->poll);
            uv_close((uv_handle_t *)&w->poll, on_closed);
            watches[fd] = NULL;
        }
    }
    int t = mw_loop_timeout_ms(mloop);
    if (mw_loop_running(mloop) == 0) {
        if (!uv_is_closing((uv_handle_t *)&timer)) uv_close((uv_handle_t *)&timer, NULL);
    } else if (t >= 0) {
        uv_timer_start(&timer, on_timer, (uint64_t)t, 0);
    } else {
        uv_timer_stop(&timer);
    }
}

static void on_done(mw_loop_job *job, const mw_loop_result *res, void *userdata)
{
    (void)job;
    const char *user = userdata;
    printf("{\"job\": \"%s\", \"user\": \"%s\", \"code\": %d, \"sent\": %d, \"messages\": %llu, "
           "\"stored\": %llu, "
           "\"deleted\": %llu, \"quit_ok\": %d, \"error\": \"",
           res->sent ? "send" : "fetch", user, res->code, res->sent,
           (unsigned long long)res->messages, (unsigned long long)res->stored,
           (unsigned long long)res->deleted, res->quit_ok);
    for (const char *c = res->err->message; res->code && *c; c++)
        printf((*c == '"' || *c == '\\') ? "\\%c" : "%c", *c);
    printf("\"}\n");
    fflush(stdout);
    if (res->code) failures++;
}

/* One note from user to notify, sent on the same loop as the fetches.
 * The message is copied into a buffer that lives until the loop ends. */
static int add_note(const char *host, const char *port, const mw_tls_opts *tls, const char *user,
                    const char *password, const char *notify, mw_error *err)
{
    static char notes[64][512], from[64][300];
    static const char *rcpt[1];
    static int used;
    mw_error_clear(err);
    if (used == 64 || strlen(user) > 200 || strlen(notify) > 200) {
        snprintf(err->message, sizeof err->message, "at most 64 accounts, names of 200 octets");
        return err->code = MW_ETOOBIG;
    }
    char *m = notes[used];
    int n = snprintf(m, sizeof notes[0],
                     "From: <%s@test.domain>\r\nTo: <%s>\r\nSubject: loop_uv note from %s\r\n"
                     "\r\n.%s is being fetched on the same loop.\r\n",
                     user, notify, user, user);
    snprintf(from[used], sizeof from[0], "%s@test.domain", user);
    rcpt[0] = notify;
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = host;
    o.port = (unsigned)strtoul(port, NULL, 10);
    o.tls_opts = tls;
    o.user = user;
    o.password = password;
    o.from = from[used++];
    o.rcpt = rcpt;
    o.nrcpt = 1;
    o.message = m;
    o.message_len = (size_t)n;
    return mw_loop_add_smtp_send(mloop, NULL, &o, on_done, (void *)user, err);
}

int main(int argc, char **argv)
{
    if (argc < 9 || (argc - 7) % 2) {
        fprintf(stderr,
                "usage: %s HOST POP3_PORT SMTP_PORT CA_FILE MAILDIR_BASE NOTIFY USER PASSWORD "
                "[...]\n",
                argv[0]);
        return 2;
    }
    mw_error err = {0};
    if (mw_loop_new(&mloop, NULL, &err) != 0) {
        fprintf(stderr, "mw_loop_new: %s\n", err.message);
        return 1;
    }
    uloop = uv_default_loop();
    uv_timer_init(uloop, &timer);
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = argv[4];
    int naccounts = (argc - 7) / 2;
    mw_store **stores = calloc((size_t)naccounts, sizeof *stores);
    for (int i = 0; stores && i < naccounts; i++) {
        char path[4096];
        const char *user = argv[7 + 2 * i], *password = argv[8 + 2 * i];
        if (snprintf(path, sizeof path, "%s/%s", argv[5], user) >= (int)sizeof path ||
            mw_store_open(&stores[i], MW_STORE_MAILDIR, path, NULL, &err) != 0) {
            fprintf(stderr, "%s: %s\n", path, err.message);
            return 1;
        }
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.host = argv[1];
        o.port = (unsigned)strtoul(argv[2], NULL, 10);
        o.tls_opts = &tls;
        o.user = user;
        o.password = password;
        o.store = stores[i];
        if (mw_loop_add_pop3_fetch(mloop, NULL, &o, on_done, argv[7 + 2 * i], &err) != 0) {
            fprintf(stderr, "%s: %s\n", o.user, err.message);
            return 1;
        }
        if (add_note(argv[1], argv[3], &tls, user, password, argv[6], &err) != 0) {
            fprintf(stderr, "%s: %s\n", user, err.message);
            return 1;
        }
    }
    sync_watches();
    uv_run(uloop, UV_RUN_DEFAULT);
    int left = (int)mw_loop_running(mloop);
    mw_loop_free(mloop);
    for (int i = 0; stores && i < naccounts; i++)
        mw_store_free(stores[i]);
    free(stores);
    uv_loop_close(uloop);
    return failures || left ? 1 : 0;
}
