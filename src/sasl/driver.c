/* The SASL driver: one AUTH login over the engine, no I/O (driver.h). */
#include "sasl/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/err.h"

enum {
    D_IDLE,   /* between mechanisms: mwi_sasld_start() next */
    D_TOKEN,  /* waiting for mwi_sasld_token() */
    D_WAIT,   /* a line went out: waiting for its reply */
    D_CANCEL, /* "*" went out: waiting for the server's refusal */
    D_DONE,
    D_FAILED,
};

struct mwi_sasld {
    mwi_sasld_cfg cfg;
    unsigned char *cb; /* copy of the channel binding data */
    const char *mechs[MW_SASL_MAX_MECHS];
    size_t nmechs, next; /* next: the index of the mechanism to start */
    const char *mech;    /* the one being tried */
    mw_sasl *eng;
    int state;
    int rounds;    /* continuations answered under this mechanism */
    int in_exch;   /* the last line was a continuation or "*" */
    int fatal;     /* FAIL that leaves the connection unusable */
    int refresh;   /* the token asked for replaces a refused one */
    int refreshed; /* this mechanism already had its one refresh */
    char *token;   /* from the provider (secret) */
    char *line;    /* the line to send (secret) */
    size_t line_len, line_cap;
    char shown[200];
    mw_error err;
};

static void wipe_str(char **p)
{
    if (*p) {
        explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

static int is_oauth(const char *mech)
{
    return !strcasecmp(mech, "XOAUTH2") || !strcasecmp(mech, "OAUTHBEARER");
}

static int fail(mwi_sasld *d, int fatal)
{
    d->state = D_FAILED;
    d->fatal = fatal;
    mwi_sasl_free(d->eng);
    d->eng = NULL;
    if (d->line) explicit_bzero(d->line, d->line_cap);
    d->line_len = 0;
    if (!d->err.code) mwi_err_set(&d->err, MW_EAUTH, "AUTH failed");
    return MWI_SASLD_FAIL;
}

/* Makes the concatenation of parts[0..n) the line to send, and what a
 * trace shows of it. */
static int set_line(mwi_sasld *d, const char *const *parts, size_t nparts)
{
    size_t n = 0;
    for (size_t i = 0; i < nparts; i++)
        n += strlen(parts[i]);
    if (n + 2 > MWI_SASLD_MAX_LINE)
        return mwi_err_set(&d->err, MW_ETOOBIG,
                           "AUTH %s: a line of %zu octets is over the %d-octet limit", d->mech,
                           n + 2, MWI_SASLD_MAX_LINE);
    if (n + 1 > d->line_cap) {
        char *nl = malloc(n + 1);
        if (!nl) return mwi_err_set(&d->err, MW_ENOMEM, "out of memory");
        if (d->line) {
            explicit_bzero(d->line, d->line_cap);
            free(d->line);
        }
        d->line = nl;
        d->line_cap = n + 1;
    }
    size_t pos = 0;
    for (size_t i = 0; i < nparts; i++) {
        size_t l = strlen(parts[i]);
        memcpy(d->line + pos, parts[i], l);
        pos += l;
    }
    d->line[n] = '\0';
    d->line_len = n;
    if (d->cfg.trace_secrets)
        mwi_copy_printable(d->shown, sizeof d->shown, d->line, n);
    else
        mwi_sasl_mask(d->shown, sizeof d->shown, d->line, n);
    return 0;
}

static int set_line1(mwi_sasld *d, const char *s)
{
    return set_line(d, &s, 1);
}

int mwi_sasld_new(mwi_sasld **out, const mwi_sasld_cfg *cfg, mw_error *err)
{
    if (out) *out = NULL;
    if (!out || !cfg || !cfg->proto || !cfg->proto->classify)
        return mwi_err_set(err, MW_EINVAL, "mwi_sasld_new: bad arguments");
    mwi_sasld *d = calloc(1, sizeof *d);
    if (!d) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    d->cfg = *cfg;
    d->cfg.creds.service = cfg->proto->service;
    d->mech = "";
    const mw_sasl_creds *c = &cfg->creds;
    if (c->cb_data && c->cb_len) {
        d->cb = malloc(c->cb_len);
        if (!d->cb) {
            free(d);
            return mwi_err_set(err, MW_ENOMEM, "out of memory");
        }
        memcpy(d->cb, c->cb_data, c->cb_len);
        d->cfg.creds.cb_data = d->cb;
    }
    int rc =
        mwi_sasl_choose(d->mechs, MW_SASL_MAX_MECHS, &d->nmechs, cfg->offered, &cfg->policy, err);
    if (rc) {
        mwi_sasld_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* A local failure of mechanism d->mech (d->err says which): the next
 * mechanism may do, unless it was out of memory. */
static int local_failure(mwi_sasld *d)
{
    mwi_sasl_free(d->eng);
    d->eng = NULL;
    int code = d->err.code;
    if ((code == MW_EUNSUPPORTED || code == MW_EINVAL) && d->next < d->nmechs) {
        d->state = D_IDLE;
        return MWI_SASLD_NEXT;
    }
    return fail(d, 0);
}

/* Starts the engine on d->mech and makes the AUTH line. */
static int begin(mwi_sasld *d)
{
    mw_sasl_creds cr = d->cfg.creds;
    if (d->token) cr.token = d->token;
    const char *ir = NULL;
    mw_error_clear(&d->err);
    mwi_sasl_free(d->eng);
    d->eng = NULL;
    if (mwi_sasl_start(&d->eng, d->cfg.use_ir ? &ir : NULL, d->mech, &cr, &d->err))
        return local_failure(d);
    /* RFC 4954 §4, RFC 5034 §4: the initial response goes on the AUTH line
     * only when the whole line fits; otherwise the server asks for it with
     * an empty challenge and the engine gives it then. */
    size_t auth = 5 + strlen(d->mech);
    int with_ir = ir && auth + 1 + strlen(ir) + 2 <= d->cfg.proto->max_auth_line;
    const char *parts[] = {"AUTH ", d->mech, " ", ir};
    if (set_line(d, parts, with_ir ? 4 : 2)) return fail(d, 0);
    d->rounds = 0;
    d->in_exch = 0;
    d->state = D_WAIT;
    return MWI_SASLD_SEND;
}

int mwi_sasld_start(mwi_sasld *d)
{
    if (!d) return MWI_SASLD_FAIL;
    if (d->state == D_DONE) return MWI_SASLD_DONE;
    if (d->state != D_IDLE) {
        if (d->state != D_FAILED)
            mwi_err_set(&d->err, MW_ESTATE, "AUTH: mwi_sasld_start in the middle of an exchange");
        return fail(d, d->state != D_FAILED || d->fatal);
    }
    if (d->next >= d->nmechs) {
        if (!d->err.code) mwi_err_set(&d->err, MW_EUNSUPPORTED, "no SASL mechanism left to try");
        return fail(d, 0);
    }
    d->mech = d->mechs[d->next++];
    d->refreshed = 0;
    d->refresh = 0;
    wipe_str(&d->token);
    if (is_oauth(d->mech) && !d->cfg.creds.token && d->cfg.has_token_fn) {
        mw_error_clear(&d->err);
        d->state = D_TOKEN;
        return MWI_SASLD_TOKEN;
    }
    return begin(d);
}

int mwi_sasld_token(mwi_sasld *d, int rc, char *token, const mw_error *perr)
{
    if (!d) {
        wipe_str(&token);
        return MWI_SASLD_FAIL;
    }
    if (d->state != D_TOKEN) {
        wipe_str(&token);
        mwi_err_set(&d->err, MW_ESTATE, "AUTH: a token nobody asked for");
        return fail(d, 1);
    }
    if (rc) {
        /* The provider's error, unchanged: it knows why. */
        wipe_str(&token);
        if (perr && (perr->code == rc || perr->message[0])) {
            d->err = *perr;
            d->err.code = rc;
        } else {
            mwi_err_set(&d->err, rc, "the token provider failed (%s)", mw_strerror(rc));
        }
        return fail(d, 0);
    }
    if (!token) {
        /* On a refresh, "nothing newer": the refusal stands. */
        if (!d->refresh) mwi_err_set(&d->err, MW_EINVAL, "the token provider gave no token");
        return fail(d, 0);
    }
    wipe_str(&d->token);
    d->token = token;
    return begin(d);
}

int mwi_sasld_ask_token(mwi_sasld *d, mw_token_fn fn, void *userdata)
{
    if (!fn) return mwi_sasld_token(d, MW_EUNSUPPORTED, NULL, NULL);
    char *tok = NULL;
    mw_error te;
    mw_error_clear(&te);
    int rc = fn(mwi_sasld_token_refresh(d), &tok, &te, userdata);
    return mwi_sasld_token(d, rc, tok, &te);
}

/* Answers a challenge we cannot accept with "*" (RFC 4954 §4, RFC 5034
 * §4); d->err holds why.  The login ends when the refusal comes. */
static int cancel(mwi_sasld *d)
{
    char why[sizeof d->err.message];
    snprintf(why, sizeof why, "%s", d->err.message);
    mwi_err_set(&d->err, d->err.code, "AUTH %s: bad server challenge, cancelled: %s", d->mech, why);
    if (set_line1(d, "*")) return fail(d, 1);
    mwi_sasl_free(d->eng);
    d->eng = NULL;
    d->in_exch = 1;
    d->state = D_CANCEL;
    return MWI_SASLD_SEND;
}

static int on_challenge(mwi_sasld *d, const mwi_sasld_reply *r)
{
    if (++d->rounds > MWI_SASLD_MAX_ROUNDS) {
        mwi_err_set(&d->err, MW_EPROTO, "more than %d challenges", MWI_SASLD_MAX_ROUNDS);
        return cancel(d);
    }
    const char *resp = NULL;
    mw_error_clear(&d->err);
    if (mwi_sasl_step(d->eng, &resp, r->text, r->len, &d->err) < 0) return cancel(d);
    if (set_line1(d, resp)) return cancel(d);
    d->in_exch = 1;
    return MWI_SASLD_SEND;
}

static int on_success(mwi_sasld *d)
{
    mw_error_clear(&d->err);
    if (mwi_sasl_check_success(d->eng, &d->err)) {
        char why[sizeof d->err.message];
        snprintf(why, sizeof why, "%s", d->err.message);
        mwi_err_set(&d->err, d->err.code,
                    "AUTH %s: server reported success before proving itself: %s", d->mech, why);
        /* The server thinks we are in; we do not trust it. */
        return fail(d, 1);
    }
    mwi_sasl_free(d->eng);
    d->eng = NULL;
    d->state = D_DONE;
    if (d->line) explicit_bzero(d->line, d->line_cap);
    d->line_len = 0;
    return MWI_SASLD_DONE;
}

/* The refusal as an mw_error. */
static void refusal_error(mwi_sasld *d, const mwi_sasld_reply *r, int code)
{
    char words[240];
    mwi_copy_printable(words, sizeof words, r->text ? r->text : "", r->text ? r->len : 0);
    mw_error_clear(&d->err);
    mwi_err_set(&d->err, code, "AUTH %s: authentication failed: %s%s%s", d->mech, r->status,
                words[0] ? " " : "", words);
    const char *se = d->eng ? mwi_sasl_server_error(d->eng) : "";
    if (se && *se) {
        size_t ml = strlen(d->err.message);
        snprintf(d->err.message + ml, sizeof d->err.message - ml, " (%s)", se);
    }
    char cmd[48];
    int n = snprintf(cmd, sizeof cmd, "AUTH %s", d->mech);
    mwi_err_set_command(&d->err, cmd, n > 0 && (size_t)n < sizeof cmd ? (size_t)n : 0);
    mwi_err_set_reply(&d->err, r->text ? r->text : "", r->text ? r->len : 0);
    d->err.reply_code = r->reply_code;
    memcpy(d->err.enhanced, r->enhanced, sizeof d->err.enhanced);
    d->err.enhanced[sizeof d->err.enhanced - 1] = '\0';
    memcpy(d->err.resp_code, r->resp_code, sizeof d->err.resp_code);
    d->err.resp_code[sizeof d->err.resp_code - 1] = '\0';
}

static int on_refusal(mwi_sasld *d, const mwi_sasld_reply *r)
{
    int k = r->kind;
    int code = (k == MWI_SASLD_R_TEMP || k == MWI_SASLD_R_GONE) ? MW_ETEMP : MW_EAUTH;
    refusal_error(d, r, code);
    mwi_sasl_free(d->eng);
    d->eng = NULL;
    if (k == MWI_SASLD_R_CREDS && d->token && !d->refreshed) {
        /* The provider may know better (a token expired early, a clock
         * behind): one new token, one more AUTH on this connection (RFC
         * 4954 §4 and RFC 5034 §4 leave the session ready for another). */
        d->refreshed = 1;
        d->refresh = 1;
        d->state = D_TOKEN;
        return MWI_SASLD_TOKEN;
    }
    if (k == MWI_SASLD_R_MECH && d->next < d->nmechs) {
        d->state = D_IDLE;
        return MWI_SASLD_NEXT;
    }
    return fail(d, k == MWI_SASLD_R_GONE);
}

int mwi_sasld_feed_class(mwi_sasld *d, const mwi_sasld_reply *r)
{
    if (!d) return MWI_SASLD_FAIL;
    if (!r) {
        mwi_err_set(&d->err, MW_EINVAL, "mwi_sasld_feed: no reply");
        return fail(d, 1);
    }
    if (d->state == D_CANCEL) {
        /* d->err is why we cancelled.  Anything but a refusal means the
         * server did not take the "*": the exchange is out of step. */
        return fail(d, r->kind == MWI_SASLD_R_CONT || r->kind == MWI_SASLD_R_OK ||
                           r->kind == MWI_SASLD_R_BAD || r->kind == MWI_SASLD_R_GONE);
    }
    if (d->state != D_WAIT) {
        if (d->state != D_FAILED) mwi_err_set(&d->err, MW_ESTATE, "AUTH: a reply nobody asked for");
        return fail(d, 1);
    }
    switch (r->kind) {
    case MWI_SASLD_R_CONT:
        return on_challenge(d, r);
    case MWI_SASLD_R_OK:
        return on_success(d);
    case MWI_SASLD_R_MECH:
    case MWI_SASLD_R_CREDS:
    case MWI_SASLD_R_TEMP:
    case MWI_SASLD_R_GONE:
    case MWI_SASLD_R_OTHER:
        return on_refusal(d, r);
    default: {
        char words[120];
        mwi_copy_printable(words, sizeof words, r->text ? r->text : "", r->text ? r->len : 0);
        mw_error_clear(&d->err);
        mwi_err_set(&d->err, MW_EPROTO, "AUTH %s: a reply the exchange does not allow: %s %s",
                    d->mech, r->status, words);
        return fail(d, 1);
    }
    }
}

int mwi_sasld_feed(mwi_sasld *d, const void *reply)
{
    if (!d) return MWI_SASLD_FAIL;
    if (!reply) return mwi_sasld_feed_class(d, NULL);
    mwi_sasld_reply r;
    memset(&r, 0, sizeof r);
    d->cfg.proto->classify(reply, d->cfg.flags, &r);
    return mwi_sasld_feed_class(d, &r);
}

int mwi_sasld_token_refresh(const mwi_sasld *d)
{
    return d && d->refresh;
}

const char *mwi_sasld_line(const mwi_sasld *d, size_t *len)
{
    if (len) *len = d && d->line ? d->line_len : 0;
    return d && d->line ? d->line : "";
}

const char *mwi_sasld_shown(const mwi_sasld *d)
{
    return d && !d->cfg.trace_secrets ? d->shown : NULL;
}

int mwi_sasld_in_exchange(const mwi_sasld *d)
{
    return d && d->in_exch;
}

const char *mwi_sasld_mech_first(const mwi_sasld *d)
{
    return d && d->nmechs ? d->mechs[0] : "";
}

const char *mwi_sasld_mech(const mwi_sasld *d)
{
    return d ? d->mech : "";
}

const mw_error *mwi_sasld_error(const mwi_sasld *d)
{
    return d ? &d->err : NULL;
}

int mwi_sasld_fatal(const mwi_sasld *d)
{
    return d && d->fatal;
}

void mwi_sasld_free(mwi_sasld *d)
{
    if (!d) return;
    mwi_sasl_free(d->eng);
    wipe_str(&d->token);
    if (d->line) {
        explicit_bzero(d->line, d->line_cap);
        free(d->line);
    }
    if (d->cb) {
        explicit_bzero(d->cb, d->cfg.creds.cb_len);
        free(d->cb);
    }
    explicit_bzero(d, sizeof *d);
    free(d);
}
