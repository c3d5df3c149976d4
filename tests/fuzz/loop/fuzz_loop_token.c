/* Fuzz target: the loop's asynchronous token provider (src/loop/ltoken.c)
 * under a POP3 command-sequence job or an SMTP send job, with arbitrary
 * token octets (NUL, CR, LF, anything), arbitrary answer timing and
 * arbitrary server bytes in arbitrary splits, through mw_loop_action over
 * a socketpair whose other end plays the server.
 *
 * Input: a flags byte (bit 0: SMTP, else POP3; bit 1: OAUTHBEARER, else
 * XOAUTH2; bit 2: the provider gives the token at once, else pending;
 * bit 3: the answer is a failure; bits 4-5: the pending answer comes after
 * that many more chunks; bit 6: cancel instead of answering; bit 7: every
 * answer given twice, the second must be MW_ESTATE), a length byte L
 * (L % 64 token octets follow), then chunks as in fuzz_pop3_loop.c (a
 * length byte, 1 + n % 64 octets).  After the last chunk the server end is
 * closed.  Findings (abort): the job not ending exactly once; a second
 * answer to one ticket taken; an answer refused for a ticket still
 * waiting; any client octet NUL, a CR not before LF or an LF not after CR
 * (a token's CR/LF/NUL reaching the wire). */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct st {
    uint8_t flags;
    const char *tok;
    size_t len;
    uint64_t ticket; /* a pending one not answered yet */
    int since;       /* chunks since it was asked */
    int ended;
    mw_loop *loop;
    mw_loop_job *job;
    int prev_cr; /* the client's last octet was CR */
} st;

static int provider(mw_loop_job *job, uint64_t ticket, int refused, char **token, mw_error *err,
                    void *ud)
{
    (void)refused;
    (void)err;
    st *s = ud;
    if (!ticket || job != s->job) abort();
    if (s->flags & 4) {
        if (s->flags & 8) return MW_EIO;
        char *t = malloc(s->len + 1);
        if (!t) return MW_ENOMEM;
        memcpy(t, s->tok, s->len);
        t[s->len] = 0; /* a NUL inside ends the string: as a caller's C string would */
        *token = t;
        return 0;
    }
    s->ticket = ticket;
    s->since = 0;
    return MW_LOOP_TOKEN_PENDING;
}

static void done_cb(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    (void)job;
    st *s = ud;
    s->ended++;
    if (getenv("MW_FUZZ_VERBOSE")) fprintf(stderr, "job: %d %s\n", res->code, res->err->message);
    if (res->code != res->err->code) abort();
}

static int reply_cb(mw_loop_job *job, const mw_loop_pop3_reply *r, void *ud)
{
    (void)job;
    (void)ud;
    if (r->len && !r->data) abort();
    return 0;
}

/* Reads what the client wrote and checks its line ends. */
static void drain(st *s, int fd)
{
    unsigned char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            unsigned char c = buf[i];
            if (c == 0) abort();
            if (s->prev_cr && c != '\n') abort();
            if (!s->prev_cr && c == '\n') abort();
            s->prev_cr = c == '\r';
        }
    }
}

static void answer(st *s)
{
    if (!s->ticket || s->since < ((s->flags >> 4) & 3)) return;
    uint64_t t = s->ticket;
    s->ticket = 0;
    if (s->flags & 64) {
        if (!s->ended && mw_loop_cancel(s->loop, s->job) != 0)
            abort(); /* the handle is gone after */
        return;
    }
    mw_error e;
    memset(&e, 0, sizeof e);
    snprintf(e.message, sizeof e.message, "the fuzzer's provider failed");
    int rc = s->flags & 8 ? MW_EIO : 0;
    int r = mw_loop_token_answer(s->loop, t, rc, s->tok, s->len, &e);
    if (r != 0 && !(s->ended && r == MW_ESTATE)) abort(); /* its job still waits: taken */
    if ((s->flags & 128) && mw_loop_token_answer(s->loop, t, rc, s->tok, s->len, &e) != MW_ESTATE)
        abort();
}

static void step(st *s, int fd)
{
    mw_loop_action(s->loop, fd, MW_LOOP_IN | MW_LOOP_OUT);
    mw_loop_action(s->loop, MW_LOOP_TIMEOUT, 0);
    /* The wake descriptor, as an outside loop would see it ready. */
    mw_loop_fd fds[4];
    size_t n = mw_loop_fds(s->loop, fds, 4);
    for (size_t k = 0; k < n && k < 4; k++)
        if (fds[k].fd != fd) mw_loop_action(s->loop, fds[k].fd, MW_LOOP_IN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    st s;
    memset(&s, 0, sizeof s);
    s.flags = data[0];
    s.len = data[1] % 64;
    if (s.len > size - 2) s.len = size - 2;
    s.tok = (const char *)data + 2;
    size_t i = 2 + s.len;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
    if (mw_loop_new(&s.loop, NULL, NULL) != 0) abort();
    const char *mech = s.flags & 2 ? "OAUTHBEARER" : "XOAUTH2";
    int rc;
    if (s.flags & 1) {
        static const char *rcpt[] = {"b@y.test"};
        mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
        o.host = "peer";
        o.tls = MW_TLS_NONE;
        o.allow_plaintext = 1;
        o.user = "u";
        o.auth = mech;
        o.from = "a@x.test";
        o.rcpt = rcpt;
        o.nrcpt = 1;
        o.message = "Subject: t\r\n\r\nhi\r\n";
        o.message_len = strlen(o.message);
        o.token_async = provider;
        o.token_async_userdata = &s;
        rc = mwi_loop_add_smtp_send_fd(s.loop, &s.job, &o, sv[0], done_cb, &s, NULL);
    } else {
        static const mw_loop_pop3_cmd cmds[] = {{MW_LOOP_POP3_NOOP, 0, 0, 0}};
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.tls = MW_TLS_NONE;
        o.allow_plaintext = 1;
        o.user = "u";
        o.auth = MW_POP3_AUTH_SASL;
        o.sasl_mechs = mech;
        rc = mwi_loop_add_pop3_cmds_fd(s.loop, &s.job, &o, cmds, 1, reply_cb, NULL, sv[0], done_cb,
                                       &s, NULL);
        if (!rc) rc = mw_loop_set_token_provider(s.loop, s.job, provider, &s);
    }
    if (rc) abort();
    while (i < size && mw_loop_running(s.loop)) {
        size_t n = 1 + data[i++] % 64;
        if (n > size - i) n = size - i;
        if (n && send(sv[1], data + i, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) drain(&s, sv[1]);
        i += n;
        step(&s, sv[0]);
        drain(&s, sv[1]);
        s.since++;
        answer(&s);
        step(&s, sv[0]);
        drain(&s, sv[1]);
    }
    close(sv[1]);
    /* The end of the stream ends the job, a pending token or not. */
    for (int round = 0; round < 1000 && mw_loop_running(s.loop); round++)
        step(&s, sv[0]);
    if (mw_loop_running(s.loop) || s.ended != 1) abort();
    if (s.ticket && mw_loop_token_answer(s.loop, s.ticket, 0, "t", 1, NULL) != MW_ESTATE) abort();
    mw_loop_free(s.loop);
    return 0;
}
