/* mailwire — the accounts configuration file (mpop/msmtp style).
 *
 *     # comment
 *     defaults
 *     tls starttls
 *     delivery maildir ~/Maildir
 *
 *     account work
 *     host pop.example.org
 *     user me
 *     passwordeval "pass show mail/work"
 *
 *     account work-send : work
 *     port 587
 *     from me@example.org
 *
 * `defaults` settings apply to every account defined after them;
 * `account NAME : P1, P2` starts from the defaults, then takes every
 * setting of P1, then of P2 (defined earlier in the file).  A value may be
 * written in double quotes (with \" and \\ inside).  Paths (password_file,
 * cafile, cert, key, delivery maildir/mbox) may start with "~/", expanded
 * with the home directory the caller passes (the library reads no
 * environment).  A file holding a `password` line must not be readable by
 * group or others.  Any bad line is an error "FILE:LINE: what was wrong".
 *
 * Keys: host, port, tls (off|starttls|implicit), user, auth (on|off|a SASL
 * mechanism name), password, passwordeval, password_file, cafile, pin
 * (sha256:BASE64), cert, key, timeout (seconds), delivery (maildir PATH |
 * mbox PATH | mda COMMAND), keep (on|off), only_new (on|off), size_limit
 * (bytes, suffix k/m/g allowed, 0 = none), filter (COMMAND),
 * delete_after_days (N), from (address), max_time (seconds, 0 = none),
 * speed_limit (bytes per second, 0 = none), speed_time (seconds),
 * queue (on|off), oauth_provider (google | microsoft | custom),
 * oauth_client_id, oauth_client_secret, oauth_device_url, oauth_auth_url,
 * oauth_token_url, oauth_revoke_url, oauth_scope, oauth_secret_store,
 * oauth_secret_lookup (commands). */
#ifndef MAILWIRE_CONFIG_H
#define MAILWIRE_CONFIG_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mw_config_tls {
    MW_CONFIG_TLS_UNSET = 0, /* not given: the command chooses (STARTTLS) */
    MW_CONFIG_TLS_OFF = 1,
    MW_CONFIG_TLS_STARTTLS = 2,
    MW_CONFIG_TLS_IMPLICIT = 3, /* POP3S / SMTPS */
} mw_config_tls;

/* One account, as read.  Strings are NULL when not given; owned by the
 * mw_config.  Fields may be added at the end in later versions. */
typedef struct mw_account {
    const char *name;
    const char *file; /* where it was defined */
    int line;
    const char *host;
    int port; /* 0: the protocol's default */
    int tls;  /* mw_config_tls */
    const char *user;
    const char *auth; /* "on", "off" or a mechanism name; NULL: on */
    const char *password;
    const char *passwordeval;
    const char *password_file;
    const char *cafile;
    const char *pin;
    const char *cert;
    const char *key;
    int timeout_s; /* 0: the default */
    int delivery;  /* mw_store_kind (store.h), 0 when not given */
    const char *delivery_target;
    int keep;            /* 1: keep messages on the server (default 0) */
    int only_new;        /* 1 (default): fetch only messages not seen before */
    uint64_t size_limit; /* 0: no limit */
    const char *filter;
    int delete_after_days; /* -1 (default): not used */
    const char *from;
    const char *crlfile; /* PEM CRLs to check the server's chain against */
    const char *proxy;   /* socks5://, socks5h:// or http:// proxy URL */
    /* Session limits (mw_net_opts max_time_ms, speed_limit, speed_time_ms):
     * keys max_time and speed_time (seconds, up to three decimals),
     * speed_limit (bytes per second, 0 = no floor). */
    int max_time_ms;   /* 0: not given (no limit) */
    long speed_limit;  /* -1: not given (the default floor) */
    int speed_time_ms; /* 0: not given (the default) */
    int queue;         /* 1: `send` goes through the outgoing queue (queue.h) */
    /* OAuth 2.0 (include/mailwire/oauth.h, `mailwire oauth`): a preset
     * (google, microsoft) and/or every endpoint given; NULL when not set. */
    const char *oauth_provider;
    const char *oauth_client_id;
    const char *oauth_client_secret;
    const char *oauth_device_url;
    const char *oauth_auth_url;
    const char *oauth_token_url;
    const char *oauth_revoke_url;
    const char *oauth_scope;
    const char *oauth_secret_store;  /* command storing the refresh token (stdin) */
    const char *oauth_secret_lookup; /* command printing it */
} mw_account;

#define MW_CONFIG_OPTIONS_VERSION 1
typedef struct mw_config_options {
    unsigned version;
    const char *home;          /* for "~/" expansion; NULL: "~" is an error */
    int skip_permission_check; /* 1: do not refuse a readable file with a password */
} mw_config_options;
#define MW_CONFIG_OPTIONS_INIT                                                                     \
    {                                                                                              \
        MW_CONFIG_OPTIONS_VERSION, NULL, 0                                                         \
    }

typedef struct mw_config mw_config;

/* Reads and parses a config file (at most 1 MiB, lines at most 4096 bytes).
 * Returns 0, MW_EIO (cannot read: "PATH: reason"), MW_EFORMAT ("PATH:LINE:
 * what"), MW_ETOOBIG, MW_EPOLICY (password in a file others can read),
 * MW_ENOMEM, MW_EINVAL.  On failure *out is NULL, detail in err. */
MW_EXTERN int mw_config_load(mw_config **out, const char *path, const mw_config_options *opt,
                             mw_error *err);
/* Parses text[0..len) as if it were the file called name (no permission
 * check, as there is no file). Same codes as mw_config_load. */
MW_EXTERN int mw_config_parse(mw_config **out, const char *text, size_t len, const char *name,
                              const mw_config_options *opt, mw_error *err);
MW_EXTERN void mw_config_free(mw_config *c);
/* The accounts in file order. */
MW_EXTERN size_t mw_config_count(const mw_config *c);
MW_EXTERN const mw_account *mw_config_account_at(const mw_config *c, size_t i);
/* By name, or NULL. */
MW_EXTERN const mw_account *mw_config_find(const mw_config *c, const char *name);
/* The first account whose `from` equals address (case-insensitively), or NULL. */
MW_EXTERN const mw_account *mw_config_find_by_from(const mw_config *c, const char *address);

/* Reads a password from the first line of a file (without its line end),
 * refusing a file that group or others can read.  *out is the caller's: the
 * caller wipes it and frees it with mw_free.  Returns 0, MW_EIO, MW_EPOLICY, MW_ETOOBIG
 * (first line over MW_SECRET_MAX bytes), MW_EFORMAT (empty, NUL or CR),
 * MW_ENOMEM.  The same as mw_secret_from_file. */
MW_EXTERN int mw_config_read_password_file(char **out, const char *path, mw_error *err);

/* Secrets (passwords, OAuth tokens): the first line, without its line end,
 * of what a descriptor, a file or a command gives.  One limit for all:
 * MW_SECRET_MAX bytes, room for a multi-KiB OAuth token.  *out (mw_free)
 * and NULL on failure; the caller wipes and frees it.  Every function
 * returns 0, MW_EINVAL (bad arguments), MW_ENOMEM, MW_EIO (cannot read;
 * the command failed), MW_ETOOBIG (first line over MW_SECRET_MAX),
 * MW_EFORMAT (empty first line, a NUL or a CR in it).  `what` names the
 * source in error messages (NULL: "the secret"). */
#define MW_SECRET_MAX 65536u
MW_EXTERN int mw_secret_from_fd(char **out, int fd, const char *what, mw_error *err);
/* A file that group or others can read is refused (MW_EPOLICY). */
MW_EXTERN int mw_secret_from_file(char **out, const char *path, mw_error *err);
/* Runs command with /bin/sh -c, its stdout a pipe (stdin and stderr the
 * caller's), reads the first line and the rest (discarded); a non-zero
 * exit is MW_EIO.  No deadline: the command may ask a person (a PIN). */
MW_EXTERN int mw_secret_from_command(char **out, const char *command, mw_error *err);

#ifdef __cplusplus
}
#endif
#endif
