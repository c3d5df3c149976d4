/* `mailwire oauth login|status|logout ACCOUNT`, and the access token for
 * the other commands (cli/oauth_cli.h). */
#include "commands.h"
#include "connopts.h"
#include "oauth_cli.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/oauth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Provider presets: endpoints, scopes, mechanism.  The user name is the
 * mail address for both (the account's `user`).  Client ids are the
 * user's own registration: none is built in. */
typedef struct preset {
    const char *name;
    const char *device_url, *auth_url, *token_url, *revoke_url, *scope, *auth_params;
    const char *mech;
    int pop3_two_step;
} preset;

static const preset presets[] = {
    {"google", "https://oauth2.googleapis.com/device/code",
     "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token",
     "https://oauth2.googleapis.com/revoke", "https://mail.google.com/", "access_type=offline",
     "XOAUTH2", 0},
    {"microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
     "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
     "https://login.microsoftonline.com/common/oauth2/v2.0/token", NULL,
     "https://outlook.office.com/POP.AccessAsUser.All https://outlook.office.com/SMTP.Send "
     "offline_access",
     NULL, "XOAUTH2", 1},
};

/* Exit codes for OAuth failures: 77 when the user must act (log in again,
 * fix the account or the certificate), 75 when trying later may work (the
 * provider failing, answering garbage, unreachable). */
static int oauth_exit(int rc)
{
    switch (rc) {
    case MW_EAUTH:
    case MW_ECERT:
    case MW_ETLS:
    case MW_EPOLICY:
    case MW_ESTATE:
        return EX_NOPERM_;
    case MW_EPROTO:
    case MW_ETOOBIG:
    case MW_ESERVER:
    case MW_ETEMP:
    case MW_ENET:
    case MW_ETIMEOUT:
        return EX_TEMPFAIL_;
    default:
        return mw_cli_exit_code(rc);
    }
}

static const preset *find_preset(const mw_account *a)
{
    if (!a || !a->oauth_provider) return NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcasecmp(a->oauth_provider, presets[i].name)) return &presets[i];
    return NULL;
}

int mw_cli_oauth_enabled(const mw_account *a)
{
    return a && (a->oauth_provider || a->oauth_token_url);
}

const char *mw_cli_oauth_mechanism(const mw_account *a)
{
    const preset *p = find_preset(a);
    return p ? p->mech : "XOAUTH2";
}

int mw_cli_oauth_pop3_two_step(const mw_account *a)
{
    const preset *p = find_preset(a);
    return p ? p->pop3_two_step : 0;
}

/* $XDG_DATA_HOME/mailwire/oauth/KEY.json, else ~/.local/share/... */
static int store_path(char *out, size_t n, const char *account)
{
    char leaf[200];
    size_t k = 0;
    for (const char *s = account; *s && k + 1 < sizeof leaf; s++)
        leaf[k++] = (*s == '/' || *s == '\\' || (unsigned char)*s < 0x20) ? '_' : *s;
    leaf[k] = '\0';
    if (!k || !strcmp(leaf, ".") || !strcmp(leaf, "..")) return -1;
    const char *x = getenv("XDG_DATA_HOME"), *h = getenv("HOME");
    int r;
    if (x && *x == '/')
        r = snprintf(out, n, "%s/mailwire/oauth/%s.json", x, leaf);
    else if (h && *h)
        r = snprintf(out, n, "%s/.local/share/mailwire/oauth/%s.json", h, leaf);
    else
        return -1;
    return r > 0 && (size_t)r < n ? 0 : -1;
}

/* Fills o from the account (preset first, explicit keys win). */
static int cli_err(mw_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cli_err(mw_error *err, int code, const char *fmt, ...)
{
    mw_error_clear(err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

/* Fills o from the account (preset first, explicit keys win).  0, or
 * MW_EFORMAT / MW_EINVAL with err set. */
static int fill_opts(const mw_account *a, mw_oauth_opts *o, char *path, size_t pathsz,
                     mw_error *err)
{
    const preset *p = find_preset(a);
    if (a->oauth_provider && !p && strcasecmp(a->oauth_provider, "custom") != 0)
        return cli_err(err, MW_EFORMAT,
                       "account %s: unknown oauth_provider \"%.60s\" (google, microsoft or "
                       "custom)",
                       a->name, a->oauth_provider);
    if (p) {
        o->device_url = p->device_url;
        o->auth_url = p->auth_url;
        o->token_url = p->token_url;
        o->revoke_url = p->revoke_url;
        o->scope = p->scope;
        o->auth_params = p->auth_params;
    }
    if (a->oauth_device_url) o->device_url = a->oauth_device_url;
    if (a->oauth_auth_url) o->auth_url = a->oauth_auth_url;
    if (a->oauth_token_url) o->token_url = a->oauth_token_url;
    if (a->oauth_revoke_url) o->revoke_url = a->oauth_revoke_url;
    if (a->oauth_scope) o->scope = a->oauth_scope;
    o->secret_store_cmd = a->oauth_secret_store;
    o->secret_lookup_cmd = a->oauth_secret_lookup;
    o->client_id = a->oauth_client_id;
    o->client_secret = a->oauth_client_secret;
    if (!o->client_id)
        return cli_err(err, MW_EFORMAT,
                       "account %s: no oauth_client_id (register an application with the "
                       "provider and put its client id in the account)",
                       a->name);
    if (!o->token_url)
        return cli_err(err, MW_EFORMAT, "account %s: no oauth_token_url and no oauth_provider",
                       a->name);
    /* Keyed by user and client, not by account: an account for sending that
     * inherits from the one for fetching (`account w-send : w`) shares its
     * login. */
    char key[400];
    if (a->user)
        snprintf(key, sizeof key, "%s_%s", a->user, o->client_id);
    else
        snprintf(key, sizeof key, "%s", a->name);
    if (store_path(path, pathsz, key) != 0)
        return cli_err(err, MW_EINVAL, "no $HOME or $XDG_DATA_HOME for the token store");
    o->store_path = path;
    return 0;
}

static int open_oauth(const char *prog, const mw_account *a, const mw_cli_conn *c,
                      mw_trace_fn trace_fn, void *trace_ud, mw_tls_opts *tls, mw_oauth **oa)
{
    mw_oauth_opts o = MW_OAUTH_OPTS_INIT;
    char path[4096];
    mw_error fe;
    int frc = fill_opts(a, &o, path, sizeof path, &fe);
    if (frc) {
        fprintf(stderr, "mailwire %s: %s\n", prog, fe.message);
        return frc == MW_EFORMAT ? EX_DATAERR_ : EX_USAGE_;
    }
    if (c) {
        mw_cli_conn_tls_opts(c, tls);
    } else {
        mw_tls_opts t0 = MW_TLS_OPTS_INIT;
        *tls = t0;
        tls->pin = a->pin;
        tls->cert_file = a->cert;
        tls->key_file = a->key;
    }
    if (!tls->ca_file && a->cafile) tls->ca_file = a->cafile;
    if (!tls->crl_file && a->crlfile) tls->crl_file = a->crlfile;
    o.tls_opts = tls;
    o.proxy = c && c->proxy ? c->proxy : a->proxy;
    if (c && c->timeout_s > 0)
        o.timeout_ms = c->timeout_s * 1000;
    else if (a->timeout_s > 0)
        o.timeout_ms = a->timeout_s * 1000;
    o.trace = c ? c->trace_fn : trace_fn;
    o.trace_userdata = c ? c->trace_ud : trace_ud;
    mw_error e;
    mw_error_clear(&e);
    int rc = mw_oauth_new(oa, &o, &e);
    if (rc) {
        fprintf(stderr, "mailwire %s: %s\n", prog, e.message);
        return mw_cli_exit_code(rc);
    }
    return 0;
}

int mw_cli_oauth_token(const char *prog, const mw_account *a, const mw_cli_conn *c,
                       mw_trace_fn trace_fn, void *trace_ud, int refused, char **token)
{
    *token = NULL;
    mw_tls_opts tls;
    mw_oauth *oa = NULL;
    int ex = open_oauth(prog, a, c, trace_fn, trace_ud, &tls, &oa);
    if (ex) return ex;
    mw_error e;
    mw_error_clear(&e);
    int rc = mw_oauth_token(oa, refused, token, &e);
    mw_oauth_free(oa);
    if (rc) {
        fprintf(stderr, "mailwire %s: account %s: %s\n", prog, a->name, e.message);
        return oauth_exit(rc);
    }
    return 0;
}

int mw_cli_oauth_token_err(const mw_account *a, mw_trace_fn trace_fn, void *trace_ud, int refused,
                           char **token, mw_error *err)
{
    *token = NULL;
    mw_oauth_opts o = MW_OAUTH_OPTS_INIT;
    char path[4096];
    int frc = fill_opts(a, &o, path, sizeof path, err);
    if (frc) return frc;
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = a->cafile;
    tls.crl_file = a->crlfile;
    tls.pin = a->pin;
    tls.cert_file = a->cert;
    tls.key_file = a->key;
    o.tls_opts = &tls;
    o.proxy = a->proxy;
    if (a->timeout_s > 0) o.timeout_ms = a->timeout_s * 1000;
    o.trace = trace_fn;
    o.trace_userdata = trace_ud;
    mw_oauth *oa = NULL;
    int rc = mw_oauth_new(&oa, &o, err);
    if (!rc) rc = mw_oauth_token(oa, refused, token, err);
    mw_oauth_free(oa);
    switch (rc) {
    case 0:
        return 0;
    case MW_ESTATE:
    case MW_EPOLICY:
    case MW_ECERT:
    case MW_ETLS:
        err->code = MW_EAUTH;
        return MW_EAUTH;
    case MW_EPROTO:
    case MW_ETOOBIG:
    case MW_ESERVER:
    case MW_ENET:
    case MW_ETIMEOUT:
        err->code = MW_ETEMP;
        return MW_ETEMP;
    default:
        return rc;
    }
}

const mw_account *mw_cli_oauth_account(const mw_cli_conn *c)
{
    const mw_account *a = c->config && c->account ? mw_config_find(c->config, c->account) : NULL;
    return mw_cli_oauth_enabled(a) ? a : NULL;
}

int mw_cli_oauth_conn_token(mw_cli_conn *c, int refused)
{
    const mw_account *a = mw_cli_oauth_account(c);
    if (!a) return EX_SOFTWARE_;
    char *tok = NULL;
    int ex = mw_cli_oauth_token(c->prog, a, c, NULL, NULL, refused, &tok);
    if (ex) return ex;
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    c->password = tok;
    return 0;
}

/* ---- mailwire oauth -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mailwire oauth login [--device | --browser] [--login-timeout SECONDS] ACCOUNT\n"
            "       mailwire oauth status ACCOUNT\n"
            "       mailwire oauth logout ACCOUNT\n"
            "  login   obtain tokens: the device flow (print a URL and a code; default when the\n"
            "          provider has a device endpoint) or the browser flow (authorization code\n"
            "          with PKCE, redirect to 127.0.0.1; the browser is opened when there is a\n"
            "          display, else the URL is printed; --login-timeout: how long to wait\n"
            "          for the redirect, default 600)\n"
            "  status  scopes and expiry of the stored tokens (never the tokens)\n"
            "  logout  revoke the tokens at the provider and delete them\n"
            "The account (--account is implied) needs oauth_provider (google, microsoft) or\n"
            "oauth_token_url etc., and oauth_client_id.  Connection options (--cafile,\n"
            "--crlfile, --pin, --proxy, --timeout, --trace, --json, --config) apply to the\n"
            "provider's endpoints.  Tokens are stored under $XDG_DATA_HOME/mailwire/oauth/.\n");
}

typedef struct login_ui {
    int json;
} login_ui;

static int show_device(const mw_oauth_device_prompt *p, unsigned polls, void *ud)
{
    login_ui *ui = ud;
    if (!p) return 0;
    if (ui->json) {
        fputs("{\"event\":\"device_code\",\"verification_uri\":", stdout);
        mw_cli_json_string(stdout, p->verification_uri, strlen(p->verification_uri));
        fputs(",\"user_code\":", stdout);
        mw_cli_json_string(stdout, p->user_code, strlen(p->user_code));
        if (p->verification_uri_complete) {
            fputs(",\"verification_uri_complete\":", stdout);
            mw_cli_json_string(stdout, p->verification_uri_complete,
                               strlen(p->verification_uri_complete));
        }
        printf(",\"expires_in\":%d}\n", p->expires_in);
        fflush(stdout);
    }
    fprintf(stderr, "mailwire oauth: to sign in, open %s and enter the code %s\n",
            p->verification_uri, p->user_code);
    if (p->verification_uri_complete)
        fprintf(stderr, "mailwire oauth: (or open %s)\n", p->verification_uri_complete);
    fprintf(stderr, "mailwire oauth: waiting for the approval (up to %d s)...\n", p->expires_in);
    return 0;
}

static int show_url(const char *url, void *ud)
{
    login_ui *ui = ud;
    if (ui->json) {
        fputs("{\"event\":\"authorization_url\",\"url\":", stdout);
        mw_cli_json_string(stdout, url, strlen(url));
        fputs("}\n", stdout);
        fflush(stdout);
    }
    fprintf(stderr, "mailwire oauth: open this URL in a browser to sign in: %s\n", url);
    const char *disp = getenv("DISPLAY"), *way = getenv("WAYLAND_DISPLAY");
    if ((disp && *disp) || (way && *way)) {
        /* The URL holds no secret (state and the PKCE challenge only). */
        pid_t pid = fork();
        if (pid == 0) {
            execlp("xdg-open", "xdg-open", url, (char *)NULL);
            _exit(127);
        }
        if (pid > 0) waitpid(pid, NULL, 0);
    }
    return 0;
}

static void iso_time(char *out, size_t n, long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The options after the verb: 0 or EX_USAGE_ (printed). */
static int oauth_args(mw_cli_conn *c, int argc, char **argv, int *flow, int *login_timeout,
                      const char **account)
{
    for (int i = 2; i < argc; i++) {
        int r = mw_cli_conn_option(c, argc, argv, &i);
        if (r < 0) return EX_USAGE_;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--device")) {
            *flow = 1;
        } else if (!strcmp(argv[i], "--browser")) {
            *flow = 2;
        } else if (!strcmp(argv[i], "--login-timeout") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 86400) {
                fprintf(stderr, "mailwire oauth: bad --login-timeout %s (1..86400 seconds)\n",
                        argv[i]);
                return EX_USAGE_;
            }
            *login_timeout = (int)v;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "mailwire oauth: unknown option %s\n", argv[i]);
            return EX_USAGE_;
        } else if (!*account) {
            *account = argv[i];
        } else {
            fprintf(stderr, "mailwire oauth: one ACCOUNT only\n");
            return EX_USAGE_;
        }
    }
    return 0;
}

/* oauth login: the device grant when the provider has one (or --device),
 * else the browser (--browser). */
static int do_login(mw_oauth *oa, const mw_account *a, int flow, int login_timeout, int json,
                    mw_error *e)
{
    int rc;
    login_ui ui = {json};
    mw_oauth_opts probe = MW_OAUTH_OPTS_INIT;
    char path[4096];
    mw_error pe;
    fill_opts(a, &probe, path, sizeof path, &pe); /* checked by open_oauth already */
    if (flow == 0) flow = probe.device_url ? 1 : 2;
    if (flow == 1)
        rc = mw_oauth_login_device(oa, show_device, &ui, e);
    else
        rc = mw_oauth_login_pkce(oa, show_url, &ui, login_timeout, e);
    if (rc == 0) {
        mw_oauth_status st;
        mw_oauth_get_status(oa, &st, e);
        if (json)
            printf("{\"event\":\"logged_in\",\"account\":\"%s\",\"refresh_token\":%s}\n", a->name,
                   st.logged_in ? "true" : "false");
        fprintf(stderr, "mailwire oauth: %s: logged in%s\n", a->name,
                st.logged_in ? ""
                             : " (the provider gave no refresh token: login again when "
                               "the access token expires)");
    }
    return rc;
}

/* oauth status: MW_ESTATE when not logged in. */
static int do_status(mw_oauth *oa, const mw_account *a, int json, mw_error *e)
{
    mw_oauth_status st;
    int rc = mw_oauth_get_status(oa, &st, e);
    if (rc == 0) {
        long long now = (long long)time(NULL);
        char when[40] = "";
        if (st.expires_at) iso_time(when, sizeof when, st.expires_at);
        if (json) {
            printf("{\"account\":");
            mw_cli_json_string(stdout, a->name, strlen(a->name));
            printf(",\"logged_in\":%s,\"access_token_cached\":%s,\"expires_at\":%lld,"
                   "\"expires_in\":%lld,\"refreshes\":%lld,\"scope\":",
                   st.logged_in ? "true" : "false", st.have_access ? "true" : "false",
                   st.expires_at, st.expires_at ? st.expires_at - now : 0, st.refreshes);
            mw_cli_json_string(stdout, st.scope, strlen(st.scope));
            printf("}\n");
            mw_cli_json_handled(); /* logged_in says it: no second object */
        } else if (!st.logged_in && !st.have_access) {
            printf("%s: not logged in (run mailwire oauth login %s)\n", a->name, a->name);
        } else {
            printf("%s: logged in%s\n", a->name, st.logged_in ? "" : " (no refresh token)");
            if (st.expires_at)
                printf("access token: %s %s (%lld s)\n",
                       st.expires_at > now ? "expires" : "expired", when,
                       st.expires_at > now ? st.expires_at - now : now - st.expires_at);
            printf("scope: %s\nrefreshes: %lld\n", st.scope[0] ? st.scope : "(not given)",
                   st.refreshes);
        }
        if (!st.logged_in && !st.have_access) rc = MW_ESTATE;
    }
    return rc;
}

/* oauth logout: not being logged in is fine. */
static int do_logout(mw_oauth *oa, const mw_account *a, mw_error *e)
{
    int rc = mw_oauth_logout(oa, e);
    if (rc == MW_ESTATE) {
        fprintf(stderr, "mailwire oauth: %s: not logged in\n", a->name);
        rc = 0;
    } else if (rc == 0) {
        fprintf(stderr, "mailwire oauth: %s: tokens revoked and deleted\n", a->name);
    } else {
        fprintf(stderr, "mailwire oauth: %s: tokens deleted here, but revocation failed\n",
                a->name);
    }
    return rc;
}

int mw_cmd_oauth(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE_ : 0;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "login") && strcmp(verb, "status") && strcmp(verb, "logout")) {
        fprintf(stderr, "mailwire oauth: unknown action \"%s\" (login, status, logout)\n", verb);
        return EX_USAGE_;
    }
    mw_cli_conn c;
    mw_cli_conn_init(&c, "oauth", 0, 0);
    int flow = 0; /* 0 auto, 1 device, 2 browser */
    int login_timeout = 600;
    const char *account = NULL;
    int r = oauth_args(&c, argc, argv, &flow, &login_timeout, &account);
    if (r) return r;
    if (!account && c.account) account = c.account;
    if (!account) {
        fprintf(stderr, "mailwire oauth: %s needs an ACCOUNT\n", verb);
        return EX_USAGE_;
    }
    c.account = account;
    /* finish loads the account (and opens --trace); the account's host is
     * not needed here but finish wants one. */
    if (!c.host) c.host = "localhost";
    int ex = mw_cli_conn_finish(&c);
    if (ex) {
        mw_cli_conn_free(&c);
        return ex;
    }
    const mw_account *a = c.config ? mw_config_find(c.config, account) : NULL;
    if (!a) {
        fprintf(stderr, "mailwire oauth: no account %s in the accounts file\n", account);
        mw_cli_conn_free(&c);
        return EX_USAGE_;
    }
    if (!mw_cli_oauth_enabled(a)) {
        fprintf(stderr,
                "mailwire oauth: account %s has no OAuth settings (oauth_provider or "
                "oauth_token_url, oauth_client_id)\n",
                account);
        mw_cli_conn_free(&c);
        return EX_DATAERR_;
    }
    mw_tls_opts tls;
    mw_oauth *oa = NULL;
    ex = open_oauth("oauth", a, &c, NULL, NULL, &tls, &oa);
    if (ex) {
        mw_cli_conn_free(&c);
        return ex;
    }
    mw_error e;
    mw_error_clear(&e);
    int rc = 0;
    if (!strcmp(verb, "login")) {
        rc = do_login(oa, a, flow, login_timeout, c.json, &e);
    } else if (!strcmp(verb, "status")) {
        rc = do_status(oa, a, c.json, &e);
        if (rc == MW_ESTATE) {
            mw_oauth_free(oa);
            mw_cli_conn_free(&c);
            return EX_NOPERM_; /* not logged in */
        }
    } else {
        rc = do_logout(oa, a, &e);
    }
    if (rc) {
        fprintf(stderr, "mailwire oauth: %s: %s\n", a->name, e.message);
        mw_cli_json_error(oauth_exit(rc), rc, &e, NULL); /* with --json only */
    }
    mw_oauth_free(oa);
    mw_cli_conn_free(&c);
    return rc ? oauth_exit(rc) : 0;
}
