/* One SMTP transaction (RFC 5321 §3.3): the checks before MAIL, MAIL,
 * RCPT, DATA or BDAT, the replies and the per-recipient result, RSET, the
 * Bcc digest (bcc.c) after it; mw_smtp_send and mw_smtp_result_free. */
#include "smtp/smtp_int.h"
#include "loop/smtp_held.h"
#include "util/err.h"
#include "util/fmt.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void mw_smtp_result_free(mw_smtp_result *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nrcpt; i++) {
        free(r->rcpt[i].address);
        free(r->rcpt[i].text);
    }
    free(r->rcpt);
    free(r->originator);
    free(r->server);
    free(r->final_text);
    free(r);
}

char *mwi_smtp_reply_text_dup(const mw_smtp_reply *rep)
{
    size_t sl;
    const char *sum = mwi_smtp_reply_summary(rep, &sl);
    char *t = malloc(sl + 1);
    if (t) mwi_copy_printable(t, sl + 1, sum, sl);
    return t;
}

/* RFC 3461 §4: xtext — '+', '=' and octets outside 33..126 as "+HH". */
static void xtext(char *out, size_t outsz, const char *in)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outsz; p++) {
        if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
            o += (size_t)snprintf(out + o, outsz - o, "+%02X", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

static int has8(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80) return 1;
    return 0;
}

static int check_dsn(const mw_smtp_msg *m, mw_error *err)
{
    if (m->dsn_notify) {
        const char *p = m->dsn_notify;
        if (!strcasecmp(p, "NEVER")) return 0;
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%s", p);
        for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (strcasecmp(t, "SUCCESS") && strcasecmp(t, "FAILURE") && strcasecmp(t, "DELAY"))
                return mwi_err_set(
                    err, MW_EINVAL,
                    "DSN NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY; not \"%.40s\"", p);
        if (strlen(p) >= sizeof tmp) return mwi_err_set(err, MW_EINVAL, "DSN NOTIFY too long");
    }
    if (m->dsn_ret && strcasecmp(m->dsn_ret, "FULL") && strcasecmp(m->dsn_ret, "HDRS"))
        return mwi_err_set(err, MW_EINVAL, "DSN RET must be FULL or HDRS");
    if (m->dsn_envid && (strlen(m->dsn_envid) > 100 || mwi_smtp_bad_arg(m->dsn_envid, 1)))
        return mwi_err_set(err, MW_EINVAL, "DSN ENVID too long or has control octets");
    return 0;
}

/* Takes the caller's message: checks it, reads its header ahead, builds
 * the envelope and the result (t->built: mwi_smtp_tx_end must run). */
static int tx_take(mw_smtp *s, mwi_smtp_tx *t, const mw_smtp_msg *m)
{
    int rc;
    memset(t, 0, sizeof *t);
    if (!m || (m->version != MW_SMTP_MSG_VERSION && m->version != 1))
        return mwi_err_set(&s->err, MW_EINVAL, "message missing or of an unknown version");
    if (m->version == 1) {
        /* A caller built against version 1 has no header_recipients. */
        memcpy(&t->m, m, offsetof(mw_smtp_msg, header_recipients));
        t->m.version = MW_SMTP_MSG_VERSION;
    } else {
        t->m = *m;
    }
    m = &t->m;
    int nsrc = (m->data != NULL) + (m->fd >= 0) + (m->read != NULL);
    if (nsrc != 1) return mwi_err_set(&s->err, MW_EINVAL, "give exactly one of data, fd or read");
    if ((rc = check_dsn(m, &s->err)) != 0) return rc;
    if (m->bcc_digest && !m->data)
        return mwi_err_set(&s->err, MW_EINVAL, "bcc_digest needs the message in memory");
    mwi_smtp_src *r = &t->r;
    r->m = m;
    const char *hdr = "";
    size_t hlen = 0;
    int need_hdr = m->rewrite_headers || !m->originator || !m->recipients || m->nheaders ||
                   m->header_recipients;
    if (need_hdr && (rc = mwi_smtp_src_header(r, &hdr, &hlen, &s->err)) != 0) {
        free(r->pre);
        r->pre = NULL;
        return rc;
    }
    mw_smtp_env *envp = &t->env;
    rc = mwi_smtp_env_build(envp, m, hdr, hlen, s->hostname, &s->err);
    if (rc) {
        free(r->pre);
        r->pre = NULL;
        return rc;
    }
    t->skip = envp->rewritten ? hlen : 0;
    mw_smtp_result *res = calloc(1, sizeof *res);
    if (!res || !(res->rcpt = calloc(envp->nrcpt, sizeof *res->rcpt))) {
        free(res);
        free(r->pre);
        r->pre = NULL;
        mwi_smtp_env_free(envp);
        return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    }
    res->nrcpt = envp->nrcpt;
    for (size_t i = 0; i < envp->nrcpt; i++) {
        res->rcpt[i].address = envp->rcpt[i];
        envp->rcpt[i] = NULL;
    }
    res->originator = envp->originator;
    envp->originator = NULL;
    res->server = strdup(s->server ? s->server : "");
    res->port = s->port;
    t->res = res;
    t->built = 1;
    /* Every exit from here on goes through mwi_smtp_tx_end, which hands it back. */
    t->xf.out = s->xout; /* empty; reused from the previous message */
    s->xout = (mw_buf)MW_BUF_INIT(0);
    return 0;
}

/* The message's size for MAIL's SIZE parameter (RFC 1870), 0 when not
 * known; *eight is set when it has (or may have) 8-bit octets. */
static uint64_t msg_size(mw_smtp *s, const mw_smtp_msg *m, const mw_smtp_env *envp, size_t skip,
                         int *eight)
{
    uint64_t size = 0;
    if (m->data) {
        size = (uint64_t)(m->len - skip) + (envp->rewritten ? envp->header.len : 0);
        *eight |= has8(m->data + skip, m->len - skip);
    } else {
        struct stat st;
        if (m->size_hint)
            size = m->size_hint;
        else if ((s->caps.flags & MW_SMTP_CAP_SIZE) && m->fd >= 0 && fstat(m->fd, &st) == 0 &&
                 S_ISREG(st.st_mode)) {
            /* The file, with its header as rewritten (Date, Message-ID…
             * added, Bcc removed); line ends made CRLF are not counted:
             * an estimate, as RFC 1870 §4 allows. */
            size = (uint64_t)st.st_size;
            if (envp->rewritten && size >= skip) size = size - skip + envp->header.len;
        }
        *eight = 1; /* unknown until read: declare 8BITMIME when offered */
    }
    return size;
}

/* MAIL's BODY parameter (RFC 6152, RFC 3030) into *body (NULL: none), or
 * the refusal of a message the server cannot take. */
static int body_param(mw_smtp *s, const mw_smtp_msg *m, int eight, int smtputf8, const char **body)
{
    int has8bm = (s->caps.flags & MW_SMTP_CAP_8BITMIME) != 0;
    int binary = m->body == MW_SMTP_BODY_BINARYMIME;
    if (binary) {
        if (!(s->caps.flags & MW_SMTP_CAP_BINARYMIME) || !(s->caps.flags & MW_SMTP_CAP_CHUNKING)) {
            return mwi_err_set(&s->err, MW_EUNSUPPORTED,
                               "the message is binary and the server does not offer %s (RFC 3030): "
                               "re-encode it as 7-bit",
                               (s->caps.flags & MW_SMTP_CAP_CHUNKING) ? "BINARYMIME"
                                                                      : "CHUNKING and BINARYMIME");
        }
        *body = "BINARYMIME";
    } else if (m->body == MW_SMTP_BODY_8BITMIME || (m->body == MW_SMTP_BODY_AUTO && eight)) {
        if (has8bm)
            *body = "8BITMIME";
        else if (m->data && !smtputf8) {
            return mwi_err_set(&s->err, MW_EUNSUPPORTED,
                               "the message has 8-bit data and the server does not offer 8BITMIME "
                               "(RFC 6152): encode it as 7-bit");
        }
    } else if (m->body == MW_SMTP_BODY_7BIT && has8bm) {
        *body = "7BIT";
    }
    return 0;
}

/* The MAIL command of the transaction into t->mail. */
static int mail_line(mw_smtp *s, mwi_smtp_tx *t, uint64_t size, const char *body, int smtputf8)
{
    const mw_smtp_msg *m = &t->m;
    const mw_smtp_result *res = t->res;
    int dsn = t->dsn;
    /* Command lines are put together without printf (per message, on the
     * path between two replies); one cut short is refused, not sent. */
    char *mail = t->mail;
    mw_fmt mf;
    mw_fmt_init(&mf, mail, sizeof t->mail);
    mw_fmt_mem(&mf, "MAIL FROM:<", 11);
    mw_fmt_str(&mf, res->originator);
    mw_fmt_mem(&mf, ">", 1);
    if ((s->caps.flags & MW_SMTP_CAP_SIZE) && size) {
        mw_fmt_mem(&mf, " SIZE=", 6);
        mw_fmt_uint(&mf, size, 1);
    }
    if (body) {
        mw_fmt_mem(&mf, " BODY=", 6);
        mw_fmt_str(&mf, body);
    }
    if (smtputf8) mw_fmt_mem(&mf, " SMTPUTF8", 9);
    if (dsn && m->dsn_ret) {
        mw_fmt_mem(&mf, " RET=", 5);
        mw_fmt_str(&mf, m->dsn_ret);
    }
    if (dsn && m->dsn_envid) {
        char x[320];
        xtext(x, sizeof x, m->dsn_envid);
        mw_fmt_mem(&mf, " ENVID=", 7);
        mw_fmt_str(&mf, x);
    }
    if (mf.over) {
        return mwi_err_set(&s->err, MW_ETOOBIG, "the MAIL command would be over %zu octets",
                           sizeof t->mail - 1);
    }
    t->ml = mf.len;
    return 0;
}

int mwi_smtp_tx_prepare(mw_smtp *s, mwi_smtp_tx *t, const mw_smtp_msg *m)
{
    int rc = tx_take(s, t, m);
    if (rc) return rc;
    m = &t->m;
    mw_smtp_result *res = t->res;
    const mw_smtp_env *envp = &t->env;
    size_t skip = t->skip;

    /* What the message needs of the server, decided before MAIL. */
    int utf8_addr = has8(res->originator, strlen(res->originator));
    for (size_t i = 0; i < res->nrcpt; i++)
        utf8_addr |= has8(res->rcpt[i].address, strlen(res->rcpt[i].address));
    int smtputf8 = 0;
    if (utf8_addr || envp->utf8) {
        if (s->caps.flags & MW_SMTP_CAP_SMTPUTF8)
            smtputf8 = 1;
        else if (utf8_addr) {
            rc = mwi_err_set(&s->err, MW_EUNSUPPORTED,
                             "an address is UTF-8 and the server does not offer SMTPUTF8 "
                             "(RFC 6531)");
            goto fail;
        }
    }
    int eight = envp->utf8;
    uint64_t size = msg_size(s, m, envp, skip, &eight);
    const char *body = NULL;
    int binary = m->body == MW_SMTP_BODY_BINARYMIME;
    if ((rc = body_param(s, m, eight, smtputf8, &body)) != 0) goto fail;
    /* RFC 1870 §6: refuse early what the server said it will not take. */
    if ((s->caps.flags & MW_SMTP_CAP_SIZE) && s->caps.size_max && size > s->caps.size_max) {
        rc = mwi_err_set(&s->err, MW_ETOOBIG,
                         "the message (%llu octets) is over the server's SIZE limit of %llu",
                         (unsigned long long)size, (unsigned long long)s->caps.size_max);
        goto fail;
    }
    /* chunking 2: BDAT with the body as it is (BINARYMIME, xfer_start) */
    int chunking = t->chunking =
        binary ? 2 : m->use_chunking && (s->caps.flags & MW_SMTP_CAP_CHUNKING);
    t->forbid8 = !(body && (!strcmp(body, "8BITMIME") || binary)) && !smtputf8;
    t->pipelining = (s->caps.flags & MW_SMTP_CAP_PIPELINING) != 0;
    t->dsn = (s->caps.flags & MW_SMTP_CAP_DSN) != 0;
    res->chunking = chunking != 0;

    if ((rc = mail_line(s, t, size, body, smtputf8)) != 0) goto fail;
    return 0;
fail:
    t->after = AFTER_OUT;
    return rc;
}

/* The RCPT command for one address, with the DSN parameters the server
 * takes (RFC 3461 §4.1, §4.2), into line[0..cap); its length, or 0 when
 * it would not fit.  No I/O: the loop's SMTP job uses it too. */
size_t mwi_smtp_rcpt_line(char *line, size_t cap, const mw_smtp_msg *m, int dsn,
                          const char *address)
{
    mw_fmt lf;
    mw_fmt_init(&lf, line, cap);
    mw_fmt_mem(&lf, "RCPT TO:<", 9);
    mw_fmt_str(&lf, address);
    mw_fmt_mem(&lf, ">", 1);
    if (dsn && m->dsn_notify) {
        mw_fmt_mem(&lf, " NOTIFY=", 8);
        mw_fmt_str(&lf, m->dsn_notify);
    }
    if (dsn && m->dsn_orcpt && !has8(address, strlen(address))) {
        char x[800];
        xtext(x, sizeof x, address);
        mw_fmt_mem(&lf, " ORCPT=rfc822;", 14);
        mw_fmt_str(&lf, x);
    }
    return lf.over ? 0 : lf.len;
}

void mwi_smtp_rcpt_reply(mw_smtp *s, mw_smtp_rcpt *rr)
{
    rr->code = s->rep->code;
    memcpy(rr->enhanced, s->rep->enhanced, sizeof rr->enhanced);
    rr->text = mwi_smtp_reply_text_dup(s->rep);
}

int mwi_smtp_tally_rcpts(mw_smtp_result *res, size_t *nacc, size_t *nperm)
{
    for (size_t i = 0; i < res->nrcpt; i++) {
        mw_smtp_rcpt *rr = &res->rcpt[i];
        rr->accepted = rr->code == 250 || rr->code == 251;
        rr->permanent = rr->code >= 500;
        if (rr->accepted) {
            (*nacc)++;
        } else {
            res->nrejected++;
            *nperm += rr->permanent;
        }
        if (rr->code == 421) return 1;
    }
    return 0;
}

int mwi_smtp_rcpt_refusal(mw_smtp *s, mw_smtp_result *res, size_t nperm)
{
    mw_smtp_rcpt *first = NULL;
    for (size_t i = 0; i < res->nrcpt && !first; i++)
        if (!res->rcpt[i].accepted) first = &res->rcpt[i];
    int rc = nperm ? MW_ESERVER : MW_ETEMP;
    mwi_err_set(&s->err, rc,
                "%zu of %zu recipients rejected (first: <%s> %d %s %s); "
                "message not sent",
                res->nrejected, res->nrcpt, first->address, first->code, first->enhanced,
                first->text ? first->text : "");
    s->err.reply_code = first->code;
    memcpy(s->err.enhanced, first->enhanced, sizeof s->err.enhanced);
    res->final_code = first->code;
    free(res->final_text);
    size_t fl = strlen(first->enhanced) + 1 + (first->text ? strlen(first->text) : 0) + 1;
    if ((res->final_text = malloc(fl)))
        snprintf(res->final_text, fl, "%s%s%s", first->enhanced, first->enhanced[0] ? " " : "",
                 first->text ? first->text : "");
    mwi_err_set_reply(&s->err, first->text ? first->text : "",
                      first->text ? strlen(first->text) : 0);
    return rc;
}

/* A prepared transaction that will not be sent (the session died first):
 * only the memory goes. */
void mwi_smtp_tx_discard(mw_smtp *s, mwi_smtp_tx *t)
{
    if (t->built) {
        mwi_smtp_xout_release(s, &t->xf.out);
        mwi_smtp_env_free(&t->env);
    }
    free(t->r.pre);
    t->r.pre = NULL;
    t->built = 0;
}

int mwi_smtp_not_ready(mw_smtp *s)
{
    return mwi_err_set(&s->err, MW_ESTATE, "the session is not ready to send (%s)",
                       s->state == ST_DEAD ? "the connection failed earlier" : "closed");
}

int mw_smtp_send(mw_smtp *s, const mw_smtp_msg *msg, mw_smtp_result **result)
{
    if (result) *result = NULL;
    if (!s) return MW_EINVAL;
    mw_error_clear(&s->err);
    if (s->state != ST_READY || !s->held) return mwi_smtp_not_ready(s);
    /* The loop's machine held between messages (src/loop/smtp_held.c). */
    int rc = mwi_smh_send(s->held, msg, s->maxtime_ms, result, &s->err);
    if (!mwi_smh_alive(s->held)) mwi_smtp_set_state(s, ST_DEAD);
    if (rc && s->err.code == 0) mwi_err_set(&s->err, rc, "%s", mw_strerror(rc));
    return rc;
}
