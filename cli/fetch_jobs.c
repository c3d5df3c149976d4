/* The jobs of `mailwire fetch`: one from the command line (--host), or one
 * per account of the accounts file, each with its POP3, TLS, network,
 * store and fetch options, its password and its UIDL state file. */
#include "commands.h"
#include "connopts.h"
#include "fetch_cli.h"
#include "oauth_cli.h"

#include "mailwire/config.h"
#include "mailwire/netrc.h"
#include "mailwire/sasl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int default_state(char *out, size_t size, const char *leaf)
{
    const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n;
    if (x && *x)
        n = snprintf(out, size, "%s/mailwire/uidl/%s", x, leaf);
    else if (home && *home)
        n = snprintf(out, size, "%s/.local/state/mailwire/uidl/%s", home, leaf);
    else
        return -1;
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* A UID state file name from an account name: '/' cannot be in it. */
static void safe_leaf(char *out, size_t size, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < size; s++)
        out[k++] = (*s == '/' || (unsigned char)*s < 0x20) ? '_' : *s;
    out[k] = '\0';
}

static int auth_from(mw_pop3_opts *po, const char *auth)
{
    if (!auth || !strcmp(auth, "auto") || !strcmp(auth, "on"))
        po->auth = MW_POP3_AUTH_AUTO;
    else if (!strcmp(auth, "off"))
        po->auth = MW_POP3_AUTH_NONE;
    else if (!strcmp(auth, "user"))
        po->auth = MW_POP3_AUTH_USER;
    else if (!strcmp(auth, "apop"))
        po->auth = MW_POP3_AUTH_APOP;
    else if (mw_sasl_mechanism_supported(auth)) {
        po->auth = MW_POP3_AUTH_SASL;
        po->sasl_mechs = auth;
    } else {
        fprintf(stderr, "mailwire fetch: auth '%s' is not auto, user, apop or a SASL mechanism\n",
                auth);
        return EX_USAGE_;
    }
    return 0;
}

/* The password (or token) of account a into j, from the first source it
 * names: OAuth store (later), password, password file, passwordeval,
 * ~/.netrc.  0 or an exit code (printed). */
static int job_password(job *j, const mw_account *a, const char *auth)
{
    mw_error e;
    if (mw_cli_oauth_enabled(a) && mw_cli_auth_is_token(auth)) {
        j->oauth = a;
        if (mw_cli_oauth_pop3_two_step(a)) j->po.sasl_ir = 0;
        /* The token itself comes when the trace is known (mw_cmd_fetch). */
    } else if (a->password) {
        j->password = strdup(a->password);
    } else if (a->password_file) {
        int rc = mw_config_read_password_file(&j->password, a->password_file, &e);
        if (rc) {
            fprintf(stderr, "mailwire fetch: %s: %s\n", a->name, e.message);
            return mw_cli_exit_code(rc);
        }
    } else if (a->passwordeval) {
        const char *why = "unknown error";
        j->password = mw_cli_password_from_command(a->passwordeval, &why);
        if (!j->password) {
            fprintf(stderr, "mailwire fetch: %s: passwordeval gave no password: %s\n", a->name,
                    why);
            return EX_NOPERM_;
        }
    } else {
        /* No password in the account: ~/.netrc, as for one-shot fetches
         * (its mode is checked; the machine matched without regard to case). */
        char path[4096];
        mw_netrc_entry ne;
        mw_error_clear(&e);
        if (mw_netrc_default_path(path, sizeof path) == 0) {
            int rc = mw_netrc_lookup(&ne, path, a->host, a->user, &e);
            if (rc < 0) {
                fprintf(stderr, "mailwire fetch: %s: %s\n", a->name, e.message);
                return mw_cli_exit_code(rc);
            }
            if (rc == 1 && ne.password[0]) {
                j->password = strdup(ne.password);
                if (!j->po.user && ne.login[0]) {
                    snprintf(j->netrc_user, sizeof j->netrc_user, "%s", ne.login);
                    j->po.user = j->netrc_user;
                }
            }
            mw_netrc_entry_clear(&ne);
        }
    }
    return 0;
}

static int job_from_account(job *j, const mw_account *a, const char *home)
{
    snprintf(j->name, sizeof j->name, "%s", a->name);
    if (!a->host) {
        fprintf(stderr, "mailwire fetch: %s:%d: account %s has no host\n", a->file, a->line,
                a->name);
        return EX_USAGE_;
    }
    snprintf(j->host, sizeof j->host, "%s", a->host);
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    j->po = po;
    mw_tls_opts t = MW_TLS_OPTS_INIT;
    j->tls = t;
    mw_net_opts n = MW_NET_OPTS_INIT;
    j->net = n;
    j->tls.ca_file = a->cafile;
    j->tls.crl_file = a->crlfile;
    j->tls.pin = a->pin;
    j->tls.cert_file = a->cert;
    j->tls.key_file = a->key;
    if (a->timeout_s > 0) j->net.io_timeout_ms = j->net.connect_timeout_ms = a->timeout_s * 1000;
    j->net.proxy = a->proxy;
    j->po.port = a->port > 0 ? (unsigned)a->port : 0;
    j->po.tls = a->tls == MW_CONFIG_TLS_OFF        ? MW_TLS_NONE
                : a->tls == MW_CONFIG_TLS_IMPLICIT ? MW_TLS_IMPLICIT
                                                   : MW_TLS_STARTTLS;
    j->po.tls_opts = &j->tls;
    j->po.net = &j->net;
    j->po.user = a->user;
    const char *auth = a->auth;
    if (mw_cli_oauth_enabled(a) && (!auth || !strcmp(auth, "on"))) auth = mw_cli_oauth_mechanism(a);
    int ex = auth_from(&j->po, auth);
    if (ex) return ex;
    if (j->po.auth != MW_POP3_AUTH_NONE) {
        int ex2 = job_password(j, a, auth);
        if (ex2) return ex2;
        j->po.password = j->password;
        if (mw_cli_auth_is_token(auth)) {
            j->po.token = j->password; /* the password sources hold the token */
            j->po.password = NULL;
        }
    }
    mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
    j->fo = fo;
    int kind = a->delivery ? a->delivery : MW_STORE_MAILDIR;
    if (a->delivery_target)
        snprintf(j->target, sizeof j->target, "%s", a->delivery_target);
    else if (kind == MW_STORE_MAILDIR && home)
        snprintf(j->target, sizeof j->target, "%s/Maildir", home);
    j->fo.store_kind = kind;
    j->fo.keep = a->keep;
    j->fo.only_new = a->only_new;
    j->fo.size_limit = a->size_limit;
    j->fo.filter = a->filter;
    j->fo.delete_after_days = a->delete_after_days;
    char leaf[300];
    safe_leaf(leaf, sizeof leaf, a->name);
    if (default_state(j->state_path, sizeof j->state_path, leaf)) {
        fprintf(stderr, "mailwire fetch: no $HOME or $XDG_STATE_HOME for the state file\n");
        return EX_USAGE_;
    }
    return 0;
}

/* The store, state file and fetch options of the one-shot job. */
static int oneshot_store(job *j, const fetch_args *fa, const char *home)
{
    mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
    j->fo = fo;
    j->fo.store_kind = fa->mbox ? MW_STORE_MBOX : fa->mda ? MW_STORE_MDA : MW_STORE_MAILDIR;
    const char *t = fa->maildir ? fa->maildir : fa->mbox ? fa->mbox : fa->mda;
    if (t)
        snprintf(j->target, sizeof j->target, "%s", t);
    else if (home)
        snprintf(j->target, sizeof j->target, "%s/Maildir", home);
    if (fa->state) {
        snprintf(j->state_path, sizeof j->state_path, "%s", fa->state);
    } else {
        char leaf[600];
        snprintf(leaf, sizeof leaf, "%s@%s:%u", fa->conn.user ? fa->conn.user : "", fa->conn.host,
                 fa->conn.port);
        char safe[600];
        safe_leaf(safe, sizeof safe, leaf);
        if (default_state(j->state_path, sizeof j->state_path, safe)) {
            fprintf(stderr, "mailwire fetch: give --state FILE (no $HOME)\n");
            return EX_USAGE_;
        }
    }
    j->fo.keep = fa->keep;
    j->fo.only_new = fa->only_new;
    j->fo.size_limit = fa->size_limit;
    j->fo.filter = fa->filter;
    return 0;
}

int mw_cli_fetch_job_oneshot(fetch_args *fa, const char *home, job **js, size_t *nj)
{
    int ex;
    if (fa->nnames || fa->all || fa->config) {
        fprintf(stderr, "mailwire fetch: --host does not go with accounts or --config\n");
        return EX_USAGE_;
    }
    if ((ex = mw_cli_conn_finish(&fa->conn))) return ex;
    job *j = calloc(1, sizeof *j);
    if (!j) return EX_SOFTWARE_;
    *js = j;
    *nj = 1;
    snprintf(j->name, sizeof j->name, "%s@%s", fa->conn.user ? fa->conn.user : "", fa->conn.host);
    snprintf(j->host, sizeof j->host, "%s", fa->conn.host);
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    j->po = po;
    if ((ex = auth_from(&j->po, fa->conn.auth))) return ex;
    if (!fa->conn.user && j->po.auth != MW_POP3_AUTH_NONE) {
        fprintf(stderr, "mailwire fetch: no user: give --user or a ~/.netrc login for %s\n",
                fa->conn.host);
        return EX_USAGE_;
    }
    if (j->po.auth != MW_POP3_AUTH_NONE &&
        (!fa->conn.auth || strcasecmp(fa->conn.auth, "EXTERNAL")) &&
        (ex = mw_cli_conn_password(&fa->conn)))
        return ex;
    mw_cli_conn_tls_opts(&fa->conn, &j->tls);
    mw_cli_conn_net_opts(&fa->conn, &j->net);
    j->po.port = fa->conn.port;
    j->po.tls = fa->conn.tls == MW_CLI_TLS_IMPLICIT ? MW_TLS_IMPLICIT
                : fa->conn.tls == MW_CLI_TLS_NONE   ? MW_TLS_NONE
                                                    : MW_TLS_STARTTLS;
    j->po.tls_opts = &j->tls;
    j->po.net = &j->net;
    j->po.user = fa->conn.user;
    j->po.password = fa->conn.password;
    if (mw_cli_auth_is_token(fa->conn.auth)) {
        j->po.token = fa->conn.password; /* the password sources hold the token */
        j->po.password = NULL;
    }
    j->oauth = mw_cli_oauth_account(&fa->conn);
    if (j->oauth && mw_cli_oauth_pop3_two_step(j->oauth)) j->po.sasl_ir = 0;
    j->po.allow_plaintext = fa->conn.allow_plaintext;
    j->po.trace = fa->conn.trace_fn;
    j->po.trace_userdata = fa->conn.trace_ud;
    return oneshot_store(j, fa, home);
}

/* The accounts file's path: --config, else $XDG_CONFIG_HOME/mailwire/config
 * or ~/.config/mailwire/config; -1 when there is none (printed). */
static int config_path(const fetch_args *fa, const char *home, char *path, size_t size)
{
    const char *x = getenv("XDG_CONFIG_HOME");
    if (fa->config)
        snprintf(path, size, "%s", fa->config);
    else if (x && *x)
        snprintf(path, size, "%s/mailwire/config", x);
    else if (home && *home)
        snprintf(path, size, "%s/.config/mailwire/config", home);
    else {
        fprintf(stderr, "mailwire fetch: no --config, $XDG_CONFIG_HOME or $HOME\n");
        return -1;
    }
    return 0;
}

/* Job j from account a, with the command line's overrides. */
static int account_job(job *j, const mw_account *a, fetch_args *fa, const char *home)
{
    int ex = job_from_account(j, a, home);
    if (ex) return ex;
    mw_cli_conn_limits(&fa->conn, a, &j->net); /* max_time, speed_limit, speed_time */
    if (fa->conn.trace_path) {
        /* --trace in account mode: every job's conversation (lines of
         * parallel jobs interleave, each line whole). */
        if ((ex = mw_cli_conn_open_trace(&fa->conn))) return ex;
        j->po.trace = fa->conn.trace_fn;
        j->po.trace_userdata = fa->conn.trace_ud;
    }
    if (!j->target[0]) {
        fprintf(stderr, "mailwire fetch: %s: no delivery target\n", a->name);
        return EX_USAGE_;
    }
    if (fa->keep) j->fo.keep = 1;
    if (!fa->only_new) j->fo.only_new = 0;
    if (fa->size_limit) j->fo.size_limit = fa->size_limit; /* the flag over the file */
    if (fa->conn.allow_plaintext) j->po.allow_plaintext = 1;
    if (fa->filter) j->fo.filter = fa->filter;
    return 0;
}

int mw_cli_fetch_jobs_config(fetch_args *fa, const char *home, mw_config **cfg, job **js,
                             size_t *nj)
{
    char config[4096];
    if (config_path(fa, home, config, sizeof config)) return EX_USAGE_;
    mw_config_options co = MW_CONFIG_OPTIONS_INIT;
    co.home = home;
    mw_error e;
    int rc = mw_config_load(cfg, config, &co, &e);
    if (rc) {
        fprintf(stderr, "mailwire fetch: %s\n", e.message);
        return rc == MW_EIO || rc == MW_EFORMAT ? 78 /* EX_CONFIG */ : mw_cli_exit_code(rc);
    }
    size_t want = fa->all ? mw_config_count(*cfg) : fa->nnames;
    if (!want && !fa->all) want = mw_config_count(*cfg) ? 1 : 0;
    if (!want) {
        fprintf(stderr, "mailwire fetch: %s has no accounts\n", config);
        return EX_USAGE_;
    }
    if (!(*js = calloc(want, sizeof **js))) return EX_SOFTWARE_;
    for (size_t k = 0; k < want; k++) {
        const mw_account *a;
        if (fa->all)
            a = mw_config_account_at(*cfg, k);
        else if (!fa->nnames) /* as mpop: the account called "default", else the first */
            a = mw_config_find(*cfg, "default") ? mw_config_find(*cfg, "default")
                                                : mw_config_account_at(*cfg, 0);
        else if (!(a = mw_config_find(*cfg, fa->names[k]))) {
            fprintf(stderr, "mailwire fetch: no account '%s' in %s\n", fa->names[k], config);
            return EX_USAGE_;
        }
        ++*nj;
        int ex = account_job(&(*js)[k], a, fa, home);
        if (ex) return ex;
    }
    return 0;
}
