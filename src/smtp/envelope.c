#include "smtp/envelope.h"

#include "mailwire/mime.h"
#include "util/err.h"
#include "util/fmt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void mwi_smtp_env_free(mw_smtp_env *env)
{
    free(env->originator);
    for (size_t i = 0; i < env->nrcpt; i++)
        free(env->rcpt[i]);
    free(env->rcpt);
    for (size_t i = 0; i < env->nbcc; i++)
        free(env->bcc[i]);
    free(env->bcc);
    free(env->subject);
    mwi_buf_free(&env->header);
    memset(env, 0, sizeof *env);
}

int mwi_smtp_check_address(const char *addr, const char *what, mw_error *err)
{
    size_t n = strlen(addr);
    if (n > MW_SMTP_MAX_PATH)
        return mwi_err_set(err, MW_EINVAL, "%s is longer than %d octets (RFC 5321 §4.5.3.1.3)",
                           what, MW_SMTP_MAX_PATH);
    int quoted = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)addr[i];
        /* CR, LF, NUL would end or split the command line (RFC 5321 §2.3.8). */
        if (c == '\r' || c == '\n')
            return mwi_err_set(err, MW_EINVAL, "%s contains a CR or LF: refused", what);
        if (c < 0x20 || c == 0x7F)
            return mwi_err_set(err, MW_EINVAL, "%s contains control octet 0x%02X: refused", what,
                               c);
        /* '<' and '>' delimit the path: refused even inside quotes, as a
         * server may not parse quoted local parts the way we do. */
        if (c == '<' || c == '>')
            return mwi_err_set(err, MW_EINVAL, "%s contains '%c': refused", what, c);
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && c == ' ')
            return mwi_err_set(err, MW_EINVAL, "%s contains '%c' outside quotes: refused", what, c);
    }
    return 0;
}

/* ---- address lists ---- */

static int push_addr(char ***list, size_t *count, const char *a, size_t n, mw_error *err)
{
    while (n > 0 && (*a == ' ' || *a == '\t')) {
        a++;
        n--;
    }
    while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t'))
        n--;
    if (n == 0) return 0;
    if (*count >= MW_SMTP_MAX_RCPT)
        return mwi_err_set(err, MW_ETOOBIG, "more than %d addresses", MW_SMTP_MAX_RCPT);
    char **nl = realloc(*list, (*count + 1) * sizeof *nl);
    if (!nl) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    *list = nl;
    char *s = strndup(a, n);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    nl[(*count)++] = s;
    return 0;
}

/* The addresses of a field's value, parsed by the MIME layer's address
 * list parser (RFC 5322 §3.4 and the obsolete syntax of §4.4: groups,
 * comments, quoted local parts, routes dropped).  An address it names an
 * error for is still taken as written: the server judges it (RCPT), and
 * mwi_smtp_check_address refuses what must never reach a command line. */
/* Whether v[0..n) is one bare addr-spec of dot-atoms: atext and '.' (RFC
 * 5322 §3.2.3; 8-bit octets as RFC 6532), one '@', something either side.
 * The list parser would give exactly these octets back as the one address. */
static int plain_addr_spec(const char *v, size_t n)
{
    size_t at = n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '@') {
            if (at != n) return 0;
            at = i;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c >= 0x80 || c == '.' || (c > 0x20 && strchr("!#$%&'*+-/=?^_`{|}~", c)))) {
            return 0;
        }
    }
    return at > 0 && at + 1 < n;
}

int mwi_smtp_parse_addresses(const char *v, size_t n, char ***list, size_t *count, mw_error *err)
{
    /* The common field "From: a@b.example" without the parser's lists. */
    if (plain_addr_spec(v, n)) return push_addr(list, count, v, n, err);
    mw_mime_addrlist *l = NULL;
    int rc = mw_mime_addrlist_parse(&l, v, n, err);
    for (size_t i = 0; !rc && i < mw_mime_addrlist_count(l); i++) {
        const mw_mime_address *a = mw_mime_addrlist_at(l, i);
        if (a->address) rc = push_addr(list, count, a->address, strlen(a->address), err);
    }
    mw_mime_addrlist_free(l);
    return rc;
}

/* ---- header fields ---- */

size_t mwi_smtp_header_len(const char *data, size_t len, int *complete)
{
    size_t i = 0;
    *complete = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - (data + i)) : len - i;
        if (ll == 0 || (ll == 1 && data[i] == '\r')) {
            if (!nl) return 0; /* a lone CR at the end: not known yet */
            *complete = 1;
            return i + ll + 1;
        }
        if (!nl) return 0;
        i += ll + 1;
    }
    return 0;
}

typedef struct field {
    const char *raw; /* whole field with folds and line end */
    size_t raw_len;
    const char *name; /* NULL for a line that is not a field */
    size_t name_len;
    const char *value; /* unfolded, white space around it dropped */
    int drop;
} field;

static int name_is(const field *f, const char *n)
{
    return f->name_len == strlen(n) && strncasecmp(f->name, n, f->name_len) == 0;
}

static void free_fields(field *f, mw_mime_headers *h)
{
    free(f);
    mw_mime_headers_free(h);
}

/* Splits a header block into fields with the MIME layer's header parser
 * (RFC 5322 §2.2: values unfolded, the white space around them dropped).
 * A line that is not a field is kept, nameless, and sent as it is.  The
 * fields point into *h, which the caller frees with them. */
static int split_fields(const char *hdr, size_t n, field **out, size_t *nout, mw_mime_headers **h,
                        mw_error *err)
{
    mw_mime_header_opts ho = MW_MIME_HEADER_OPTS_INIT;
    ho.max_field_len = ho.max_total = MW_SMTP_MAX_HEADER + 64 * 1024;
    ho.max_fields = 65536;
    *out = NULL;
    *nout = 0;
    int rc = mw_mime_headers_parse(h, hdr, n, NULL, &ho, err);
    if (rc) return rc;
    size_t nf = mw_mime_headers_count(*h);
    field *fs = calloc(nf ? nf : 1, sizeof *fs);
    if (!fs) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    for (size_t i = 0; i < nf; i++) {
        mw_mime_field mf;
        mw_mime_headers_at(*h, i, &mf);
        fs[i].raw = mf.raw;
        fs[i].raw_len = mf.raw_len;
        if (mf.name_len) {
            fs[i].name = mf.name;
            fs[i].name_len = mf.name_len;
            fs[i].value = mf.value;
        }
    }
    *out = fs;
    *nout = nf;
    return 0;
}

/* Both from the MIME layer's one maker (src/mime/date.c). */
void mwi_smtp_make_date(char *out, size_t n)
{
    if (n == 0) return;
    if (mw_mime_date_format(out, n, (int64_t)time(NULL), 0) != 0) out[0] = '\0';
}

int mwi_smtp_make_msgid(char *out, size_t n, const char *host, mw_error *err)
{
    int rc = mw_mime_unique_id(out, n, host && *host ? host : "localhost");
    if (rc == MW_EIO)
        return mwi_err_set(err, rc, "no random bytes from the kernel for a Message-ID");
    if (rc) return mwi_err_set(err, rc, "cannot make a Message-ID for host \"%.100s\"", host);
    return 0;
}

static int has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 1;
    return 0;
}

static int check_extra_header(const char *h, mw_error *err)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return mwi_err_set(err, MW_EINVAL, "extra header \"%.60s\" is not \"Name: value\"", h);
    for (const char *p = h; p < colon; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F)
            return mwi_err_set(err, MW_EINVAL, "extra header name \"%.60s\" is not valid", h);
    for (const char *p = h; *p; p++)
        if (*p == '\r' || *p == '\n')
            return mwi_err_set(err, MW_EINVAL,
                               "extra header \"%.40s…\" contains CR or LF (header injection)", h);
    return 0;
}

static int add_field(mw_buf *b, const char *name, const char *value)
{
    int rc = mwi_buf_append_str(b, name);
    if (!rc) rc = mwi_buf_append(b, ": ", 2);
    if (!rc) rc = mwi_buf_append_str(b, value);
    if (!rc) rc = mwi_buf_append(b, "\r\n", 2);
    return rc;
}

/* What mwi_smtp_env_build works on: the fields of the header and of the
 * caller's extra headers, and what they were found to say. */
typedef struct build {
    mw_smtp_env *env;
    const mw_smtp_msg *msg;
    mw_error *err;
    field *fs, *xs; /* the header's fields, the extra ones (parsed first) */
    size_t nf, nx;
    mw_mime_headers *hfs, *hxs;
    mw_buf extra;
    char **from; /* the From mailboxes */
    size_t nfrom;
    /* The field names of the envelope, Resent- ones for a resent message. */
    const char *n_from, *n_sender, *n_to, *n_cc, *n_bcc, *n_date, *n_mid;
    int have_from, have_sender, have_date, have_mid;
    const char *sender_val;
} build;

/* Field i of the extra fields followed by the header's. */
static field *field_at(build *b, size_t i)
{
    return i < b->nx ? &b->xs[i] : &b->fs[i - b->nx];
}

/* The caller's extra fields and the header hdr[0..hlen) split into fields. */
static int parse_fields(build *b, const char *hdr, size_t hlen)
{
    int rc = 0;
    /* The caller's extra fields are parsed as if they were at the top. */
    for (size_t i = 0; i < b->msg->nheaders && !rc; i++) {
        rc = check_extra_header(b->msg->headers[i], b->err);
        if (!rc && (mwi_buf_append_str(&b->extra, b->msg->headers[i]) ||
                    mwi_buf_append(&b->extra, "\r\n", 2)))
            rc = mwi_err_set(b->err, MW_ETOOBIG, "extra headers too large");
    }
    /* No extra fields (the common case): nothing to parse. */
    if (!rc && b->extra.len)
        rc = split_fields(b->extra.data, b->extra.len, &b->xs, &b->nx, &b->hxs, b->err);
    if (!rc) rc = split_fields(hdr, hlen, &b->fs, &b->nf, &b->hfs, b->err);
    return rc;
}

/* The envelope's field names: the Resent- ones when any field is one. */
static void pick_names(build *b)
{
    /* RFC 5322 §3.6.6: a resent message takes its envelope from the
     * Resent- fields (Tcllib: when any -header is resent-*). */
    int resent = 0;
    for (size_t i = 0; i < b->nf + b->nx; i++) {
        field *f = field_at(b, i);
        if (f->name_len > 7 && strncasecmp(f->name, "Resent-", 7) == 0) resent = 1;
    }
    b->n_from = resent ? "Resent-From" : "From";
    b->n_sender = resent ? "Resent-Sender" : "Sender";
    b->n_to = resent ? "Resent-To" : "To";
    b->n_cc = resent ? "Resent-Cc" : "Cc";
    b->n_bcc = resent ? "Resent-Bcc" : "Bcc";
    b->n_date = resent ? "Resent-Date" : "Date";
    b->n_mid = resent ? "Resent-Message-ID" : "Message-ID";
}

/* What the fields say: From, Sender, recipients, Subject; Bcc marked to drop. */
static int scan_fields(build *b)
{
    mw_smtp_env *env = b->env;
    const mw_smtp_msg *msg = b->msg;
    mw_error *err = b->err;
    int rc = 0;
    for (size_t i = 0; i < b->nf + b->nx && !rc; i++) {
        field *f = field_at(b, i);
        if (!f->name) continue;
        if (has_8bit(f->raw, f->raw_len)) env->utf8 = 1;
        if (name_is(f, b->n_from)) {
            b->have_from = 1;
            rc = mwi_smtp_parse_addresses(f->value, strlen(f->value), &b->from, &b->nfrom, err);
        } else if (name_is(f, b->n_sender)) {
            b->have_sender = 1;
            b->sender_val = f->value;
        } else if (name_is(f, b->n_date)) {
            b->have_date = 1;
        } else if (name_is(f, b->n_mid)) {
            b->have_mid = 1;
        }
        int hdr_rcpt = !msg->recipients || msg->header_recipients;
        if (hdr_rcpt && msg->bcc_digest && name_is(f, b->n_bcc))
            rc = mwi_smtp_parse_addresses(f->value, strlen(f->value), &env->bcc, &env->nbcc, err);
        else if (hdr_rcpt && (name_is(f, b->n_to) || name_is(f, b->n_cc) || name_is(f, b->n_bcc)))
            rc = mwi_smtp_parse_addresses(f->value, strlen(f->value), &env->rcpt, &env->nrcpt, err);
        if (!rc && name_is(f, "Subject") && !env->subject && !(env->subject = strdup(f->value)))
            rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
        /* Bcc never reaches the transmitted message (RFC 5322 §3.6.3). */
        if (name_is(f, "Bcc") || name_is(f, "Resent-Bcc")) f->drop = 1;
    }
    return rc;
}

/* The envelope's originator, checked for the command line. */
static int pick_originator(build *b)
{
    mw_smtp_env *env = b->env;
    mw_error *err = b->err;
    int rc = 0;
    /* Originator: the option, else From when it holds one mailbox, else
     * Sender (RFC 5322 §3.6.2 requires it when From holds several). */
    if (b->msg->originator) {
        env->originator = strdup(b->msg->originator);
    } else if (b->nfrom == 1) {
        env->originator = strdup(b->from[0]);
    } else if (b->sender_val) {
        char **s = NULL;
        size_t ns = 0;
        rc = mwi_smtp_parse_addresses(b->sender_val, strlen(b->sender_val), &s, &ns, err);
        if (!rc && ns == 1) env->originator = strdup(s[0]);
        for (size_t i = 0; i < ns; i++)
            free(s[i]);
        free(s);
        if (!rc && ns != 1)
            rc = mwi_err_set(err, MW_EFORMAT, "%s must hold exactly one mailbox", b->n_sender);
    } else if (b->nfrom > 1) {
        rc = mwi_err_set(err, MW_EFORMAT, "too many mailboxes in %s and no %s: give an originator",
                         b->n_from, b->n_sender);
    } else {
        rc = mwi_err_set(err, MW_EFORMAT, "no originator: give one, or a %s field", b->n_from);
    }
    if (!rc && !env->originator) rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (rc) return rc;
    if ((rc = mwi_smtp_check_address(env->originator, "the originator", err)) != 0) return rc;
    if (has_8bit(env->originator, strlen(env->originator))) env->utf8 = 1;
    return 0;
}

/* The caller's recipients added to those of the header, less duplicates. */
static int add_recipients(build *b)
{
    mw_smtp_env *env = b->env;
    const mw_smtp_msg *msg = b->msg;
    int rc = 0;
    size_t from_header = env->nrcpt; /* header_recipients: found above */
    for (size_t i = 0; i < msg->nrecipients && !rc; i++) {
        int dup = 0;
        for (size_t j = 0; j < from_header && !dup; j++)
            dup = !strcasecmp(env->rcpt[j], msg->recipients[i]);
        for (size_t j = 0; j < env->nbcc && !dup; j++)
            dup = !strcasecmp(env->bcc[j], msg->recipients[i]);
        if (!dup)
            rc = push_addr(&env->rcpt, &env->nrcpt, msg->recipients[i], strlen(msg->recipients[i]),
                           b->err);
    }
    return rc;
}

/* At least one recipient, and every one (Bcc too) fit for the command line. */
static int check_recipients(build *b)
{
    mw_smtp_env *env = b->env;
    mw_error *err = b->err;
    if (env->nrcpt == 0)
        return mwi_err_set(err, MW_EFORMAT, "no recipients: give some, or %s/%s/%s fields", b->n_to,
                           b->n_cc, b->n_bcc);
    for (size_t i = 0; i < env->nrcpt; i++) {
        if (mwi_smtp_check_address(env->rcpt[i], "", NULL) != 0) {
            /* Named only when refused: no snprintf per good recipient. */
            char what[64];
            snprintf(what, sizeof what, "recipient %zu", i + 1);
            return mwi_smtp_check_address(env->rcpt[i], what, err);
        }
        if (!env->rcpt[i][0]) return mwi_err_set(err, MW_EINVAL, "recipient %zu is empty", i + 1);
        if (has_8bit(env->rcpt[i], strlen(env->rcpt[i]))) env->utf8 = 1;
    }
    for (size_t i = 0; i < env->nbcc; i++) {
        int rc = mwi_smtp_check_address(env->bcc[i], "a Bcc recipient", err);
        if (rc) return rc;
    }
    return 0;
}

/* The fields added when missing: From or Sender, Date, Message-ID; then the empty line. */
static int add_missing(build *b, const char *host)
{
    mw_smtp_env *env = b->env;
    const mw_smtp_msg *msg = b->msg;
    mw_buf *hb = &env->header;
    int rc = 0;
    char tmp[400];
    mw_fmt f;
    if (!b->have_from && env->originator[0]) {
        mw_fmt_init(&f, tmp, sizeof tmp);
        mw_fmt_mem(&f, "<", 1);
        mw_fmt_str(&f, env->originator);
        mw_fmt_mem(&f, ">", 1);
        rc = add_field(hb, b->n_from, tmp);
    } else if (msg->rewrite_headers == 1 && msg->originator && env->originator[0] &&
               !b->have_sender && b->nfrom > 0) {
        /* RFC 5322 §3.6.2: when the agent sending is not the author, name
         * it in Sender (Tcllib adds one when the originator differs). */
        int differs = 1;
        for (size_t i = 0; i < b->nfrom; i++)
            if (strcasecmp(b->from[i], env->originator) == 0) differs = 0;
        if (differs) {
            mw_fmt_init(&f, tmp, sizeof tmp);
            mw_fmt_mem(&f, "<", 1);
            mw_fmt_str(&f, env->originator);
            mw_fmt_mem(&f, ">", 1);
            rc = add_field(hb, b->n_sender, tmp);
        }
    }
    if (!rc && !b->have_date) {
        mwi_smtp_make_date(tmp, sizeof tmp);
        rc = add_field(hb, b->n_date, tmp);
    }
    if (!rc && !b->have_mid) {
        if ((rc = mwi_smtp_make_msgid(tmp, sizeof tmp, host, b->err))) return rc;
        rc = add_field(hb, b->n_mid, tmp);
    }
    if (!rc) rc = mwi_buf_append(hb, "\r\n", 2);
    if (rc && rc != MW_EFORMAT) rc = mwi_err_set(b->err, rc, "header block too large");
    return rc;
}

/* The header to send: as given (after the extra fields), or rewritten without Bcc and completed. */
static int make_header(build *b, const char *hdr, size_t hlen, const char *host)
{
    mw_smtp_env *env = b->env;
    mw_error *err = b->err;
    int rc = 0;
    if (!b->msg->rewrite_headers) {
        if (b->nx > 0) { /* extra headers are still added */
            env->rewritten = 1;
            if (mwi_buf_append(&env->header, b->extra.data, b->extra.len) ||
                mwi_buf_append(&env->header, hdr, hlen))
                rc = mwi_err_set(err, MW_ETOOBIG, "header block too large");
        }
        return rc;
    }
    env->rewritten = 1;
    mw_buf *hb = &env->header;
    /* One allocation for the fields and those added (From, Date,
     * Message-ID: under 512 octets), not one per doubling.  Too big: the
     * appends below say so. */
    (void)mwi_buf_reserve(hb, b->extra.len + hlen + 512);
    for (size_t i = 0; i < b->nf + b->nx && !rc; i++) {
        field *f = field_at(b, i);
        if (!f->drop && mwi_buf_append(hb, f->raw, f->raw_len))
            rc = mwi_err_set(err, MW_ETOOBIG, "header block too large");
        /* A last field without a line end (no body) gets one. */
        if (!rc && !f->drop && (f->raw_len == 0 || f->raw[f->raw_len - 1] != '\n') &&
            mwi_buf_append(hb, "\r\n", 2))
            rc = mwi_err_set(err, MW_ETOOBIG, "header block too large");
    }
    if (rc && rc != MW_EFORMAT) rc = mwi_err_set(err, rc, "header block too large");
    return rc ? rc : add_missing(b, host);
}

int mwi_smtp_env_build(mw_smtp_env *env, const mw_smtp_msg *msg, const char *hdr, size_t hlen,
                       const char *host, mw_error *err)
{
    memset(env, 0, sizeof *env);
    env->header.max = MW_SMTP_MAX_HEADER + 64 * 1024;
    build b = {.env = env, .msg = msg, .err = err, .extra = MW_BUF_INIT(MW_SMTP_MAX_HEADER)};
    int rc = parse_fields(&b, hdr, hlen);
    if (!rc) {
        pick_names(&b);
        rc = scan_fields(&b);
    }
    if (!rc) rc = pick_originator(&b);
    if (!rc && msg->recipients) rc = add_recipients(&b);
    if (!rc) rc = check_recipients(&b);
    if (!rc) rc = make_header(&b, hdr, hlen, host);
    for (size_t i = 0; i < b.nfrom; i++)
        free(b.from[i]);
    free(b.from);
    free_fields(b.fs, b.hfs);
    free_fields(b.xs, b.hxs);
    mwi_buf_free(&b.extra);
    if (rc) mwi_smtp_env_free(env);
    return rc;
}
