/* Fuzz target: the loop's SMTP send job (src/loop/smtp_job.c) fed
 * arbitrary server bytes in arbitrary splits through mw_loop_action, over
 * a socketpair whose other end plays the server.
 *
 * Input: one flags byte (bit 0: log in with AUTH PLAIN, bits 1-2: 1 to 4
 * recipients, bit 3: a large message, bit 4: the message as an mw_smtp_msg
 * (the blocking session's transaction: PIPELINING, BDAT, header rewrite,
 * atleastone), bit 5: with bit 4, read from a callback instead of
 * memory, bit 6: with bit 4, a BINARYMIME body with downgrade, bit 7:
 * with bit 4, recipients from To and Bcc with the Bcc digest, a second
 * transaction), then chunks, each a length byte
 * (1 + L % 64 octets follow) and the octets.  After the last chunk the
 * server end is closed; the job must then end, exactly once. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void done_cb(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    (void)job;
    int *n = ud;
    (*n)++;
    if (getenv("MW_FUZZ_VERBOSE"))
        fprintf(stderr, "job: %d sent %d quit %d: %s\n", res->code, res->sent, res->quit_ok,
                res->err->message);
    if (res->code != res->err->code || (res->code == 0 && !res->sent)) abort();
}

typedef struct src {
    const char *p;
    size_t len, off;
} src;

static long src_read(void *buf, size_t len, void *ud)
{
    src *s = ud;
    size_t n = s->len - s->off < len ? s->len - s->off : len;
    if (n > 1000) n = 1000; /* short reads, as a pipe gives them */
    memcpy(buf, s->p + s->off, n);
    s->off += n;
    return (long)n;
}

static void drain(int s)
{
    char buf[65536];
    while (recv(s, buf, sizeof buf, MSG_DONTWAIT) > 0) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char big[200 * 1024];
    if (!big[0])
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = i % 77 == 76 ? '\n' : i % 77 ? 'x' : '.';
    if (size < 1) return 0;
    static const char *const rcpt[] = {"a@test.domain", "b@test.domain", "c@test.domain",
                                       "d@test.domain"};
    static const char small[] = "Subject: fuzz\n\n.dot\r\n..two\rlast";
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
    mw_loop *loop = NULL;
    if (mw_loop_new(&loop, NULL, NULL) != 0) abort();
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "peer";
    o.tls = MW_TLS_NONE;
    if (data[0] & 1) {
        o.user = "fuzz";
        o.password = "secret";
        o.allow_plaintext = 1;
    }
    o.from = "f@test.domain";
    o.rcpt = rcpt;
    o.nrcpt = 1 + ((data[0] >> 1) & 3);
    o.message = (data[0] & 8) ? big : small;
    o.message_len = (data[0] & 8) ? sizeof big : sizeof small - 1;
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    src rs = {o.message, o.message_len, 0};
    mw_smtp_result *res = NULL;
    int ready = 0;
    if (data[0] & 16) {
        if (data[0] & 32) {
            m.read = src_read;
            m.read_userdata = &rs;
        } else {
            m.data = o.message;
            m.len = o.message_len;
        }
        m.originator = o.from;
        m.recipients = rcpt;
        m.nrecipients = o.nrcpt;
        if (data[0] & 128) {
            static const char hdr[] = "To: a@test.domain\nBcc: b@test.domain\nSubject: s\n\nbody\n";
            if (!m.read) {
                m.data = hdr;
                m.len = sizeof hdr - 1;
            }
            m.recipients = NULL;
            m.nrecipients = 0;
            m.bcc_digest = 1;
        }
        if (data[0] & 64) {
            m.body = MW_SMTP_BODY_BINARYMIME;
            o.downgrade = 1;
        }
        o.msg = &m;
        o.result = &res;
        o.ready = &ready;
    }
    int ended = 0;
    if (mwi_loop_add_smtp_send_fd(loop, NULL, &o, sv[0], done_cb, &ended, NULL) != 0) abort();
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
    if (mw_loop_running(loop) || ended != 1) abort();
    if (res && (res->sent ? ready != 1 : 0)) abort(); /* sent only by a ready session */
    mw_smtp_result_free(res);
    mw_loop_free(loop);
    return 0;
}
