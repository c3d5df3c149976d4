/* Fuzz target: the loop's SMTP batch (src/loop/smtp_batch.c) fed
 * arbitrary server bytes in arbitrary splits through mw_loop_action, over
 * a socketpair whose other end plays the server.
 *
 * Input: one flags byte (bits 0-1: 1 to 4 messages, bit 2: log in with
 * AUTH PLAIN, bit 3: BDAT when offered, bit 4: message pipelining off,
 * bit 5: the second message refused before sending (CR LF in an
 * address), bit 6: the messages read from a callback, bit 7: two
 * recipients with atleastone), then chunks, each a length byte (1 + L %
 * 64 octets follow) and the octets.  After the last chunk the server end
 * is closed; the job must then end exactly once, every message next gave
 * must have been reported exactly once and in order, a message reported
 * 0 must have been sent, and the job's counts must agree. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct src {
    const char *p;
    size_t len, off;
} src;

typedef struct fz {
    unsigned flags;
    int n;           /* messages next gives */
    size_t given;    /* messages next gave */
    size_t reported; /* done calls so far (each index in order) */
    size_t ok;       /* reported 0 */
    int ended, job_sent;
    uint64_t job_msgs;
    src rs[4];
} fz;

static const char body[] = "Subject: fuzz\n\n.dot\r\n..two\rlast\n";

static long src_read(void *buf, size_t len, void *ud)
{
    src *s = ud;
    size_t n = s->len - s->off < len ? s->len - s->off : len;
    if (n > 7) n = 7; /* short reads */
    memcpy(buf, s->p + s->off, n);
    s->off += n;
    return (long)n;
}

static int next_cb(mw_loop_job *job, size_t i, mw_smtp_msg *m, void *ud)
{
    (void)job;
    fz *f = ud;
    static const char *const to[] = {"a@test.domain", "b@test.domain"};
    static const char *const bad[] = {"a@test.domain\r\nRSET", "b@test.domain"};
    if (i != f->given || f->reported + 2 < i) abort(); /* asked in order, at most one ahead */
    if ((int)i >= f->n) return 0;
    f->given++;
    if (f->flags & 64) {
        f->rs[i] = (src){body, sizeof body - 1, 0};
        m->read = src_read;
        m->read_userdata = &f->rs[i];
    } else {
        m->data = body;
        m->len = sizeof body - 1;
    }
    m->originator = "f@test.domain";
    m->recipients = i == 1 && (f->flags & 32) ? bad : to;
    m->nrecipients = (f->flags & 128) ? 2 : 1;
    m->atleastone = (f->flags & 128) != 0;
    m->use_chunking = (f->flags & 8) != 0;
    return 1;
}

static void msg_cb(mw_loop_job *job, size_t i, int rc, const mw_smtp_result *r, const mw_error *e,
                   void *ud)
{
    fz *f = ud;
    if (i != f->reported || i >= f->given) abort(); /* once each, in order */
    if (rc != e->code) abort();
    if (rc == 0 && (!r || !r->sent)) abort();
    if (rc == 0) f->ok++;
    f->reported++;
    (void)mw_loop_smtp_alive(job);
    if (getenv("MW_FUZZ_VERBOSE")) fprintf(stderr, "message %zu: %d %s\n", i, rc, e->message);
}

static void done_cb(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    (void)job;
    fz *f = ud;
    f->ended++;
    f->job_sent = res->sent;
    f->job_msgs = res->messages;
    if (getenv("MW_FUZZ_VERBOSE"))
        fprintf(stderr, "job: %d sent %d: %s\n", res->code, res->sent, res->err->message);
    if (res->code != res->err->code) abort();
}

static void drain(int s)
{
    char buf[65536];
    while (recv(s, buf, sizeof buf, MSG_DONTWAIT) > 0) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
    mw_loop *loop = NULL;
    if (mw_loop_new(&loop, NULL, NULL) != 0) abort();
    fz f;
    memset(&f, 0, sizeof f);
    f.flags = data[0];
    f.n = 1 + (data[0] & 3);
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "peer";
    o.tls = MW_TLS_NONE;
    if (data[0] & 4) {
        o.user = "fuzz";
        o.password = "secret";
        o.allow_plaintext = 1;
    }
    mw_loop_smtp_batch b = MW_LOOP_SMTP_BATCH_INIT;
    b.next = next_cb;
    b.done = msg_cb;
    b.userdata = &f;
    b.no_message_pipelining = (data[0] & 16) != 0;
    if (mwi_loop_add_smtp_batch_fd(loop, NULL, &o, &b, sv[0], done_cb, &f, NULL) != 0) abort();
    size_t i = 1;
    while (i < size && mw_loop_running(loop)) {
        size_t n = 1 + data[i++] % 64;
        if (n > size - i) n = size - i;
        if (n && send(sv[1], data + i, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) drain(sv[1]);
        i += n;
        mw_loop_action(loop, sv[0], MW_LOOP_IN | MW_LOOP_OUT);
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
        drain(sv[1]);
    }
    close(sv[1]);
    for (int round = 0; round < 1000 && mw_loop_running(loop); round++) {
        mw_loop_action(loop, sv[0], MW_LOOP_IN | MW_LOOP_OUT);
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
    }
    if (mw_loop_running(loop) || f.ended != 1) abort();
    if (f.reported != f.given || f.job_msgs != f.given || (size_t)f.job_sent != f.ok) abort();
    mw_loop_free(loop);
    return 0;
}
