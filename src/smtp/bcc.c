/* Tcllib's Bcc copy of a message: a multipart/digest (RFC 2046 §5.1.5)
 * holding the message as sent, in a transaction of its own to the Bcc
 * recipients (transaction.c runs it after the main one). */
#include "smtp/smtp_int.h"
#include "mailwire/mime.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tcllib's Bcc copy: a second transaction to the Bcc
 * recipients whose message is a multipart/digest (RFC 2046 §5.1.5) holding
 * the message as sent.  Its recipients' results are appended to res. */
/* The message as sent (its rewritten header, if any, then the rest),
 * parsed as the one part of the digest. */
static int digest_inner(const mw_smtp_msg *m, const mw_smtp_env *env, size_t skip,
                        mw_mime_part **out, mw_error *err)
{
    mw_buf whole = MW_BUF_INIT(0);
    int rc = env->rewritten ? mwi_buf_append(&whole, env->header.data, env->header.len) : 0;
    if (!rc) rc = mwi_buf_append(&whole, m->data + skip, m->len - skip);
    if (rc) {
        mwi_buf_free(&whole);
        return mwi_err_set(err, rc, "cannot build the Bcc copy");
    }
    rc = mw_mime_parse(out, whole.data, whole.len, NULL, err);
    mwi_buf_free(&whole);
    return rc;
}

/* The digest (RFC 2046 §5.1.5) with the MIME builder: its own header
 * fields, then the message as a message/rfc822 part. */
static int digest_build(mw_smtp *s, const mw_smtp_msg *m, const mw_smtp_env *env, size_t skip,
                        const char *originator, char **data, size_t *len)
{
    char date[64], mid[400], from[600];
    mwi_smtp_make_date(date, sizeof date);
    if (mwi_smtp_make_msgid(mid, sizeof mid, s->hostname, &s->err)) return s->err.code;
    snprintf(from, sizeof from, "<%s>", originator);
    mw_mime_part *dig = NULL, *inner = NULL, *wrap = NULL;
    int rc = digest_inner(m, env, skip, &inner, &s->err);
    if (!rc && (rc = mw_mime_message_new(&wrap, inner, &s->err)) == 0) inner = NULL;
    if (!rc) rc = mw_mime_part_new(&dig, "multipart/digest", &s->err);
    const char *const fields[][2] = {
        {"From", from}, {"Bcc", ""}, {"Date", date}, {"Subject", NULL}, {"Message-ID", mid}};
    for (size_t i = 0; !rc && i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = fields[i][1];
        char subj[1100];
        if (!v) {
            snprintf(subj, sizeof subj, "[Bcc] %s", env->subject ? env->subject : "");
            v = subj;
        }
        rc = mw_mime_part_header(dig, fields[i][0], v, MW_MIME_HDR_APPEND, &s->err);
    }
    if (!rc && (rc = mw_mime_part_add(dig, wrap, &s->err)) == 0) wrap = NULL;
    if (!rc) rc = mw_mime_part_to_buffer(dig, data, len, &s->err);
    mw_mime_part_free(inner);
    mw_mime_part_free(wrap);
    mw_mime_part_free(dig);
    return rc;
}

int mwi_smtp_bcc_msg(mw_smtp *s, const mw_smtp_msg *m, const mw_smtp_env *env, size_t skip,
                     const mw_smtp_result *res, mw_smtp_msg *b, char **built)
{
    size_t blen = 0;
    *built = NULL;
    int rc = digest_build(s, m, env, skip, res->originator, built, &blen);
    if (rc) return rc;
    mw_smtp_msg d = MW_SMTP_MSG_INIT;
    d.data = *built;
    d.len = blen;
    d.originator = res->originator;
    d.recipients = (const char *const *)env->bcc;
    d.nrecipients = env->nbcc;
    d.rewrite_headers = 0;
    d.atleastone = m->atleastone;
    d.body = m->body;
    d.use_chunking = m->use_chunking;
    d.dsn_notify = m->dsn_notify;
    d.dsn_ret = m->dsn_ret;
    d.dsn_orcpt = m->dsn_orcpt;
    *b = d;
    return 0;
}

int mwi_smtp_bcc_merge(mw_smtp *s, mw_smtp_result *res, mw_smtp_result *r2, int rc)
{
    if (!r2) return rc;
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
    return rc;
}
