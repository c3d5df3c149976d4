/* libFuzzer target: a whole SMTP client session against arbitrary server
 * output.  The input is what the "server" says, handed out in pieces whose
 * sizes come from the input's first byte; the client opens (greeting,
 * EHLO/HELO, maybe AUTH PLAIN without TLS as allowed), then sends a batch
 * of three messages (messages pipelined when offered, BDAT when offered),
 * then one more with mw_smtp_send, then QUIT.  Whatever the server says,
 * the session must end without a crash, a leak or undefined behaviour, and
 * the batch must report every message it took exactly once, in order. */
#include "../fake_server.h"
#include "mailwire/net.h"
#include "mailwire/smtp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct batch {
    int asked, done;
    size_t last;
} batch;

static const char *const rcpt[] = {"b@y.test", "c@y.test"};

static int next_msg(size_t index, mw_smtp_msg *m, void *ud)
{
    batch *b = ud;
    if (b->asked >= 3) return 0;
    b->asked++;
    static const char *const bodies[] = {
        "Subject: one\n\nhello\n.dot line\n",
        "From: x@y.test\nTo: t@y.test\nBcc: h@y.test\n\n8-bit caf\xc3\xa9\r\n",
        "Subject: three\n\n" /* empty body */,
    };
    m->data = bodies[index % 3];
    m->len = strlen(m->data);
    m->originator = index == 1 ? NULL : "a@x.test";
    m->recipients = index == 1 ? NULL : rcpt;
    m->nrecipients = index == 1 ? 0 : 1 + index % 2;
    m->atleastone = index != 2;
    return 1;
}

static void msg_done(size_t index, int rc, const mw_smtp_result *r, const mw_error *err, void *ud)
{
    (void)rc;
    (void)r;
    batch *b = ud;
    if (!err) abort();
    if ((int)index != b->done || b->done >= b->asked) abort(); /* once each, in order */
    b->done++;
    b->last = index;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fake_server srv;
    mw_stream *st = NULL;
    mw_error err;
    if (fake_server_stream(&st, &srv, data, size) != 0) return 0;
    static const char *const servers[] = {"127.0.0.1"};
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    o.servers = servers;
    o.nservers = 1;
    o.tls = MW_TLS_NONE;
    o.stream = st;
    if (data[0] & 0x80) {
        o.user = "u";
        o.password = "p";
        o.sasl_mechs = "PLAIN";
        o.allow_plaintext = 1;
    }
    mw_smtp *s = NULL;
    if (mw_smtp_open(&s, &o, &err) != 0) return 0; /* the stream is freed */
    mw_smtp_set_message_pipelining(s, !(data[0] & 0x40));
    batch b = {0, 0, 0};
    (void)mw_smtp_send_batch(s, next_msg, msg_done, &b);
    if (b.done != b.asked) abort();
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.data = "Subject: four\n\nx\n";
    m.len = strlen(m.data);
    m.originator = "";
    m.recipients = rcpt;
    m.nrecipients = 1;
    mw_smtp_result *r = NULL;
    (void)mw_smtp_send(s, &m, &r);
    mw_smtp_result_free(r);
    mw_smtp_quit(s);
    mw_smtp_free(s);
    return 0;
}
