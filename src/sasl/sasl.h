/* Internal SASL client engine shared by POP3 (RFC 5034) and SMTP (RFC 4954).
 *
 * The engine does no I/O.  A session picks mechanisms with mwi_sasl_choose(),
 * starts one with mwi_sasl_start() (which may hand back an initial response),
 * then feeds every server challenge (the base64 text after "+ " or "334 ")
 * to mwi_sasl_step() and sends back the base64 response it returns.  When the
 * server reports success (+OK / 235) the session calls
 * mwi_sasl_check_success(): a mutual-authentication mechanism (SCRAM,
 * DIGEST-MD5) that has not yet verified the server is an error then.
 *
 * GNU SASL does the mechanisms it has (PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5,
 * SCRAM-SHA-1(-PLUS), SCRAM-SHA-256(-PLUS), EXTERNAL); XOAUTH2 and
 * OAUTHBEARER (RFC 7628) are written here.  One GNU SASL context per engine
 * instance: engines in different threads share nothing.
 *
 * The loop below is what src/sasl/driver.h runs for POP3 and SMTP alike;
 * sessions use the driver, not these calls.
 *
 * The loop:
 *
 *     const char *mechs[MW_SASL_MAX_MECHS]; size_t n;
 *     rc = mwi_sasl_choose(mechs, MW_SASL_MAX_MECHS, &n, offered, &policy, err);
 *     for each mechs[i] (falling back on MW_EAUTH / server refusal):
 *         const char *ir;
 *         rc = mwi_sasl_start(&s, &ir, mechs[i], &creds, err);
 *         send "AUTH <mech>" plus " <ir>" when ir != NULL (ir is "=" when the
 *             initial response is empty, RFC 4954 §4 / RFC 5034 §4);
 *         loop: read reply;
 *             continuation "+ X" / "334 X": rc = mwi_sasl_step(s, &resp, X, len, err);
 *                 rc < 0: send "*" (cancel, RFC 4954 §4), read the reply, fail with rc;
 *                 else send resp (possibly the empty line) and go on reading;
 *             success: rc = mwi_sasl_check_success(s, err); done (rc is 0 or MW_EAUTH);
 *             failure: MW_EAUTH; mwi_sasl_server_error(s) may add the server's
 *                 OAuth/SCRAM error text;
 *         mwi_sasl_free(s);
 *
 * A session that does not want to send an initial response (it would make
 * the command line too long, or the caller disabled it) passes ir_b64 = NULL
 * to mwi_sasl_start(); the first message is then produced by mwi_sasl_step()
 * when the server sends its empty challenge.  If it asked for the initial
 * response but then did not send it, mwi_sasl_step() given an empty first
 * challenge returns that same message again. */
#ifndef MW_SASL_SASL_H
#define MW_SASL_SASL_H

#include <stddef.h>

#include "mailwire/error.h"
#include "mailwire/sasl.h"

/* Longest challenge accepted, in base64 characters (MW_ETOOBIG beyond). */
#define MW_SASL_MAX_CHALLENGE (16 * 1024)
/* Room enough for every mechanism mwi_sasl_choose() can return. */
#define MW_SASL_MAX_MECHS 16
/* Longest mechanism name (RFC 4422 §3.1: 1 to 20 characters). */
#define MW_SASL_MECH_NAME_MAX 20

/* What the client knows.  Strings are NUL-terminated and copied by
 * mwi_sasl_start(); NULL means "not given". */
typedef struct mw_sasl_creds {
    const char *authcid;  /* the user name (authentication identity) */
    const char *authzid;  /* act as this user (authorization identity), optional */
    const char *password; /* for PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM */
    const char *token;    /* OAuth 2.0 bearer token for XOAUTH2 / OAUTHBEARER */
    const char *service;  /* "pop" or "smtp" (DIGEST-MD5 digest-uri); default "smtp" */
    const char *hostname; /* the server's name (DIGEST-MD5 digest-uri, OAUTHBEARER host=) */
    unsigned port;        /* OAUTHBEARER port=; 0 leaves it out */
    /* Channel binding (RFC 5929 "tls-unique", RFC 9266 "tls-exporter") when
     * the connection is TLS: from mw_stream_channel_binding().  Required by
     * the -PLUS mechanisms (up to 1024 bytes); ignored by the others.  Plain
     * SCRAM always sends the "n" flag: GNU SASL 2.2 cannot build the "y" of
     * RFC 5802 §6. */
    const char *cb_type;
    const unsigned char *cb_data;
    size_t cb_len;
} mw_sasl_creds;

/* What the caller allows, for mwi_sasl_choose(). */
typedef struct mw_sasl_policy {
    /* NULL or "" or "auto": the strongest offered mechanisms, in the order
     * EXTERNAL (want_external), OAUTHBEARER, XOAUTH2 (has_token),
     * SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1,
     * DIGEST-MD5, CRAM-MD5, PLAIN, LOGIN (has_password).
     * Otherwise a list of mechanism names (separated by spaces or commas), in
     * the caller's order of preference; each must be offered. */
    const char *want;
    int tls;             /* the connection is encrypted */
    int allow_plaintext; /* send PLAIN/LOGIN/bearer tokens without TLS (explicit) */
    int has_password;
    int has_token;
    int want_external; /* a client certificate is in use: try EXTERNAL */
    int has_cb;        /* channel binding data available: -PLUS allowed */
} mw_sasl_policy;

/* Picks the mechanisms to try, best first, from `offered` (the server's list:
 * names separated by spaces, as in SMTP's "250-AUTH ..." or POP3's CAPA
 * "SASL ..." line after the keyword; matched case-insensitively; unknown names
 * ignored; at most 64 names looked at).  offered == NULL means
 * the server did not say: only explicitly wanted mechanisms are returned.
 * out[] receives pointers to static upper-case names; *n_out their number.
 * Returns 0 (with *n_out >= 1), or
 *   MW_EPOLICY      only plaintext mechanisms are usable and the connection is
 *                   not encrypted (and allow_plaintext is 0),
 *   MW_EUNSUPPORTED nothing offered that we can use with what we have (or a
 *                   wanted mechanism is not offered),
 *   MW_EINVAL       a wanted name is not a mechanism mailwire supports, or bad
 *                   arguments.
 * err (may be NULL) says which. */
int mwi_sasl_choose(const char **out, size_t out_cap, size_t *n_out, const char *offered,
                    const mw_sasl_policy *policy, mw_error *err);

typedef struct mw_sasl mw_sasl;

/* Return values of mwi_sasl_step() besides errors. */
#define MW_SASL_CONTINUE 0 /* send the response; the mechanism expects more */
#define MW_SASL_DONE     1 /* send the response; the client side is complete */

/* Starts mechanism `mech` (case-insensitive).
 * ir_b64: when not NULL, receives the initial response for client-first
 * mechanisms (PLAIN, SCRAM-*, EXTERNAL, XOAUTH2, OAUTHBEARER) — base64, or
 * "=" when empty — and NULL for server-first ones (LOGIN, CRAM-MD5,
 * DIGEST-MD5).  The string belongs to the engine and stays valid until the
 * next call on it.
 * Returns 0, or MW_EINVAL (unknown mechanism; a credential it needs is
 * missing; ^A, CR, LF in an OAuth user, host or token), MW_ENOMEM,
 * MW_EUNSUPPORTED (GNU SASL lacks the mechanism). */
int mwi_sasl_start(mw_sasl **out, const char **ir_b64, const char *mech, const mw_sasl_creds *creds,
                   mw_error *err);

/* Feeds one server challenge: `challenge` is the base64 text (len bytes, no
 * CRLF, may be empty).  *resp_b64 receives the base64 response to send as
 * the next line (possibly ""), owned by the engine until the next call.
 * Returns MW_SASL_CONTINUE or MW_SASL_DONE (see above), or
 *   MW_ETOOBIG  the challenge is over MW_SASL_MAX_CHALLENGE, or a DIGEST-MD5
 *               challenge decodes to 2048 bytes or more (RFC 2831 §2.1.1),
 *   MW_EPROTO   bad base64, a challenge the mechanism cannot parse (SCRAM
 *               server-first without nonce/salt/iterations, a nonce that does
 *               not extend ours, an iteration count of 0 or above the cap of
 *               1000000 — the message names the count and the cap), or a
 *               challenge after the mechanism finished,
 *   MW_EAUTH    the server's proof did not verify ("server signature did
 *               not verify"), or the server sent a SCRAM "e=" error,
 *   MW_ENOMEM.
 * After an error the engine accepts no more challenges (MW_ESTATE). */
int mwi_sasl_step(mw_sasl *s, const char **resp_b64, const char *challenge, size_t len,
                  mw_error *err);

/* 1 once the client side has completed the mechanism (all messages sent,
 * the server's proof verified when there is one), else 0. */
int mwi_sasl_finished(const mw_sasl *s);
/* 1 when the mechanism authenticates the server too (SCRAM, DIGEST-MD5). */
int mwi_sasl_mutual(const mw_sasl *s);
/* To call when the server reports success.  Returns 0 when that is
 * acceptable, MW_EAUTH when the mechanism is mutual and has not verified
 * the server yet ("early success": the server skipped its proof). */
int mwi_sasl_check_success(const mw_sasl *s, mw_error *err);
/* The mechanism's canonical (upper-case) name. */
const char *mwi_sasl_mech(const mw_sasl *s);
/* The error the server sent inside the exchange (OAuth error JSON of RFC
 * 7628 §3.2.2, SCRAM "e=" value), printable, or "" when none. */
const char *mwi_sasl_server_error(const mw_sasl *s);
/* Frees the engine and wipes the secrets it holds.  NULL is fine. */
void mwi_sasl_free(mw_sasl *s);

/* Masks a client line of an AUTH exchange for a trace: "AUTH PLAIN <b64>"
 * becomes "AUTH PLAIN ****"; "AUTH CRAM-MD5" stays; a continuation response
 * becomes "****"; the cancel line "*" and the empty line stay as they are.
 * A trailing CR LF is dropped.  Writes at most outsz bytes including the
 * NUL; returns the length written. */
size_t mwi_sasl_mask(char *out, size_t outsz, const char *line, size_t len);

/* GNU SASL's version (loading it, as its mechanisms do), or "not loaded". */
const char *mwi_sasl_gsasl_version(void);

#endif
