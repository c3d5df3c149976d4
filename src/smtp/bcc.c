/* Tcllib's Bcc copy of a message: a multipart/digest (RFC 2046 §5.1.5)
 * holding the message as sent, in a transaction of its own to the Bcc
 * recipients (transaction.c runs it after the main one). */
#include "smtp/smtp_int.h"
#include "util/err.h"
#include "util/random.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tcllib's Bcc copy: a second transaction to the Bcc
 * recipients whose message is a multipart/digest (RFC 2046 §5.1.5) holding
 * the message as sent.  Its recipients' results are appended to res. */
int mwi_smtp_send_bcc_digest(mw_smtp *s, const mw_smtp_msg *m, const mw_smtp_env *env, size_t skip,
                             mw_smtp_result *res)
{
    mw_buf d = MW_BUF_INIT(0);
    char date[64], mid[400], boundary[80];
    unsigned char rnd[9];
    mwi_smtp_make_date(date, sizeof date);
    if (mwi_smtp_make_msgid(mid, sizeof mid, s->hostname, &s->err)) return s->err.code;
    if (mwi_random_bytes(rnd, sizeof rnd, &s->err)) return s->err.code;
    int bl = snprintf(boundary, sizeof boundary, "=_mw_bcc_");
    for (size_t i = 0; i < sizeof rnd; i++)
        bl += snprintf(boundary + bl, sizeof boundary - (size_t)bl, "%02x", rnd[i]);
    int rc = mwi_buf_printf(&d,
                            "From: <%s>\r\nBcc:\r\nDate: %s\r\nSubject: [Bcc] %s\r\n"
                            "Message-ID: %s\r\nMIME-Version: 1.0\r\n"
                            "Content-Type: multipart/digest; boundary=\"%s\"\r\n\r\n"
                            "--%s\r\nContent-Type: message/rfc822\r\n\r\n",
                            res->originator, date, env->subject ? env->subject : "", mid, boundary,
                            boundary);
    if (!rc && env->rewritten) rc = mwi_buf_append(&d, env->header.data, env->header.len);
    if (!rc) rc = mwi_buf_append(&d, m->data + skip, m->len - skip);
    if (!rc) rc = mwi_buf_printf(&d, "\r\n--%s--\r\n", boundary);
    if (rc) {
        mwi_buf_free(&d);
        return mwi_err_set(&s->err, rc, "cannot build the Bcc copy");
    }
    mw_smtp_msg b = MW_SMTP_MSG_INIT;
    b.data = d.data;
    b.len = d.len;
    b.originator = res->originator;
    b.recipients = (const char *const *)env->bcc;
    b.nrecipients = env->nbcc;
    b.rewrite_headers = 0;
    b.atleastone = m->atleastone;
    b.body = m->body;
    b.use_chunking = m->use_chunking;
    b.dsn_notify = m->dsn_notify;
    b.dsn_ret = m->dsn_ret;
    b.dsn_orcpt = m->dsn_orcpt;
    mw_smtp_result *r2 = NULL;
    mwi_smtp_trace_info(s, "sending the Bcc copy (multipart/digest) to %zu recipients", env->nbcc);
    rc = mwi_smtp_send_tx(s, &b, &r2);
    mwi_buf_free(&d);
    if (r2) {
        mw_smtp_rcpt *all = realloc(res->rcpt, (res->nrcpt + r2->nrcpt) * sizeof *all);
        if (all) {
            memcpy(all + res->nrcpt, r2->rcpt, r2->nrcpt * sizeof *all);
            res->rcpt = all;
            res->nrcpt += r2->nrcpt;
            res->nrejected += r2->nrejected;
            r2->nrcpt = 0; /* moved */
        } else if (!rc) {
            rc = mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
        }
        mw_smtp_result_free(r2);
    }
    return rc;
}
