/* Internal: the one SASL driver of POP3 (RFC 5034) and SMTP (RFC 4954).
 *
 * The driver runs a whole AUTH login over the engine of sasl.h: it picks
 * the mechanisms (mwi_sasl_choose), builds the AUTH line with or without
 * the initial response, base64, the continuation lines, the cancel "*",
 * masks what a trace shows, and applies one fallback rule.  It does no
 * I/O: it says what to send and is fed the replies, so the blocking
 * session (src/pop3/pop3_auth.c) and the loop's jobs (src/loop/smtp_auth.c)
 * drive it alike.  The protocol gives its codes through mwi_sasl_proto.
 *
 * Use:
 *
 *     mwi_sasld *d;
 *     rc = mwi_sasld_new(&d, &cfg, err);        // chooses; 0 or an error
 *     act = mwi_sasld_start(d);
 *     for (;;) switch (act) {
 *     case MWI_SASLD_SEND:   send mwi_sasld_line() + CRLF (trace
 *                            mwi_sasld_shown()), read ONE complete reply,
 *                            act = mwi_sasld_feed(d, &reply);
 *     case MWI_SASLD_TOKEN:  act = mwi_sasld_ask_token(d, fn, ud);
 *                            (or ask the provider yourself, refresh
 *                            flag mwi_sasld_token_refresh(), then
 *                            act = mwi_sasld_token(d, rc, token, &perr))
 *     case MWI_SASLD_NEXT:   (trace mwi_sasld_error()) act = mwi_sasld_start(d);
 *     case MWI_SASLD_DONE:   logged in with mwi_sasld_mech();
 *     case MWI_SASLD_FAIL:   mwi_sasld_error() is the error to report;
 *                            mwi_sasld_fatal(): the connection is unusable.
 *     }
 *     mwi_sasld_free(d);
 *
 * Every call returns at once; a job keeps `act` and the driver between
 * events.  A read or write failure is the caller's: it stops driving.
 * From an event-loop job: on entering its AUTH state, make the driver and
 * run the switch above up to the first SEND (NEXT and TOKEN are answered at
 * once); queue the line, return to the loop; when ONE complete reply has
 * arrived (POP3: one status line through mwi_pop3_parse_status; SMTP: a
 * complete mw_smtp_reply) feed it and run the switch again.  The lines can
 * be up to MWI_SASLD_MAX_LINE long; only the first is a command (the one
 * an error names).  The token provider (token.h) is a blocking callback:
 * a job calls it through mwi_sasld_ask_token, which fails TOKEN when there
 * is none.
 *
 * THE FALLBACK RULE (docs/CONVENTIONS.md, "SASL fallback"), both protocols:
 * the mechanisms tried are those the caller allows (named, in the caller's
 * order, or all usable ones offered, strongest first); within that list
 *   - a reply saying this mechanism will not do here moves on to the next
 *     one (MWI_SASLD_NEXT): SMTP 504, 534, 538, 500, 501 (RFC 4954 §6,
 *     RFC 5321 §4.2.3); POP3 -ERR [SYS/PERM] (RFC 3206 §4: the server's
 *     system, not the credentials), and -ERR without [AUTH] when the server
 *     announced AUTH-RESP-CODE (RFC 3206 §6: then every credentials
 *     refusal carries [AUTH]); so does a local failure before anything was
 *     sent (GNU SASL lacks the mechanism, a credential it needs is missing);
 *   - a refusal of the credentials ends the login with MW_EAUTH: SMTP 535
 *     (or enhanced code x.7.8) and 432, POP3 -ERR [AUTH], and a POP3 -ERR
 *     without code from a server that did not announce AUTH-RESP-CODE (it
 *     may be the password: trying it again under every mechanism invites a
 *     lockout).  A token from the provider is refreshed once first
 *     (MWI_SASLD_TOKEN) and the same mechanism tried again;
 *   - a temporary refusal ends it with MW_ETEMP (SMTP 4xx, 421 also closing
 *     the connection; POP3 [SYS/TEMP], [IN-USE], [LOGIN-DELAY]); any other
 *     refusal (SMTP 5xx not listed) with MW_EAUTH, as does the last
 *     mechanism's "will not do";
 *   - a challenge we cannot accept (bad base64, over a limit, a server proof
 *     that does not verify, more than MWI_SASLD_MAX_ROUNDS challenges) is
 *     answered "*" (RFC 4954 §4, RFC 5034 §4) and ends the login: a server
 *     that misbehaves under one mechanism gets no other (a forged failure
 *     must not talk us down to a weaker one);
 *   - success before a mutual mechanism verified the server ends it
 *     (MW_EAUTH, the connection unusable).
 * A single named mechanism thus has no fallback. */
#ifndef MW_SASL_DRIVER_H
#define MW_SASL_DRIVER_H

#include <stddef.h>

#include "mailwire/error.h"
#include "mailwire/token.h"
#include "sasl/sasl.h"

/* Continuations accepted per mechanism (SCRAM and DIGEST-MD5 need 2, an
 * OAuth error 1); past this the exchange is cancelled. */
#define MWI_SASLD_MAX_ROUNDS 8
/* Longest line the driver sends, CRLF included (RFC 5034 §4 and RFC 4954 §4
 * bound only the AUTH line itself; DIGEST-MD5 answers run past 512). */
#define MWI_SASLD_MAX_LINE 16384

/* What the driver asks for next. */
enum mwi_sasld_act {
    MWI_SASLD_SEND = 1, /* send mwi_sasld_line(), then feed the reply */
    MWI_SASLD_DONE,     /* authenticated */
    MWI_SASLD_FAIL,     /* the login failed: mwi_sasld_error() */
    MWI_SASLD_NEXT,     /* this mechanism will not do: mwi_sasld_start() tries the next */
    MWI_SASLD_TOKEN,    /* a token is needed from the provider: mwi_sasld_token() */
};

/* A reply of the exchange, as the protocol's hook classifies it. */
enum mwi_sasld_kind {
    MWI_SASLD_R_CONT = 1, /* a continuation: text is the base64 challenge */
    MWI_SASLD_R_OK,       /* authenticated */
    MWI_SASLD_R_MECH,     /* refused: this mechanism will not do here */
    MWI_SASLD_R_CREDS,    /* refused: the credentials */
    MWI_SASLD_R_TEMP,     /* refused: not now */
    MWI_SASLD_R_GONE,     /* refused, and the server closes the connection */
    MWI_SASLD_R_OTHER,    /* refused for another reason */
    MWI_SASLD_R_BAD,      /* not a reply the exchange allows */
};

typedef struct mwi_sasld_reply {
    int kind;         /* enum mwi_sasld_kind */
    const char *text; /* the challenge (CONT) or the server's words */
    size_t len;
    char status[24];    /* how the reply starts: "-ERR", "535 5.7.8" */
    int reply_code;     /* for mw_error: SMTP code, else 0 */
    char enhanced[16];  /* SMTP enhanced status code, or "" */
    char resp_code[48]; /* POP3 response code, or "" */
} mwi_sasld_reply;

/* Classify flags. */
#define MWI_SASLD_F_RESP_CODES 1u /* POP3: the server announced AUTH-RESP-CODE */

/* A protocol's codes and hooks. */
typedef struct mwi_sasl_proto {
    const char *name;    /* "POP3", "SMTP" */
    const char *service; /* the SASL service name: "pop", "smtp" */
    /* Longest AUTH line with its initial response, CRLF included: 255 for
     * POP3 (RFC 2449 §4, RFC 5034 §4), 512 for SMTP (RFC 5321 §4.5.3.1.4,
     * RFC 4954 §4).  A longer one is sent without it and the response goes
     * after the server's empty challenge. */
    size_t max_auth_line;
    /* Classifies one complete reply of the protocol's codec: POP3 a
     * const mw_pop3_status * (proto/pop3_codec.h), SMTP a complete
     * const mw_smtp_reply * (proto/smtp_reply.h). */
    void (*classify)(const void *reply, unsigned flags, mwi_sasld_reply *out);
} mwi_sasl_proto;

extern const mwi_sasl_proto mwi_sasl_proto_pop3;
extern const mwi_sasl_proto mwi_sasl_proto_smtp;

typedef struct mwi_sasld_cfg {
    const mwi_sasl_proto *proto;
    const char *offered;   /* the server's mechanism list; NULL: not said */
    mw_sasl_policy policy; /* what the caller allows (sasl.h) */
    /* Strings are used by reference and must outlive the driver;
     * cb_data is copied.  service is set from proto. */
    mw_sasl_creds creds;
    int use_ir;        /* send initial responses (RFC 4954 §4, RFC 5034 §4) */
    int has_token_fn;  /* OAuth mechanisms without creds.token ask (MWI_SASLD_TOKEN) */
    int trace_secrets; /* mwi_sasld_shown() gives NULL: show the line itself */
    unsigned flags;    /* MWI_SASLD_F_* for proto->classify */
} mwi_sasld_cfg;

typedef struct mwi_sasld mwi_sasld;

/* Makes a driver and chooses the mechanisms.  Returns 0, or the error of
 * mwi_sasl_choose() (MW_EPOLICY, MW_EUNSUPPORTED, MW_EINVAL) or MW_ENOMEM,
 * in err (may be NULL); *out is NULL then. */
int mwi_sasld_new(mwi_sasld **out, const mwi_sasld_cfg *cfg, mw_error *err);
/* Starts the next mechanism: SEND, TOKEN, NEXT (it failed locally), FAIL. */
int mwi_sasld_start(mwi_sasld *d);
/* Feeds one complete reply (proto->classify's type).  Any act. */
int mwi_sasld_feed(mwi_sasld *d, const void *reply);
/* The same with a reply already classified (tests, other protocols). */
int mwi_sasld_feed_class(mwi_sasld *d, const mwi_sasld_reply *r);
/* Hands over what the token provider gave: rc its return value, token a
 * malloc'd string the driver now owns (wiped and freed by it), perr its
 * error.  SEND, NEXT or FAIL. */
int mwi_sasld_token(mwi_sasld *d, int rc, char *token, const mw_error *perr);
/* Answers TOKEN with the caller's provider (token.h), as both sessions
 * call it: fn(mwi_sasld_token_refresh(d), ...) and its answer handed to
 * mwi_sasld_token.  A NULL fn fails it with MW_EUNSUPPORTED.  Runs in the
 * calling thread (on a loop the other jobs wait).  SEND, NEXT or FAIL. */
int mwi_sasld_ask_token(mwi_sasld *d, mw_token_fn fn, void *userdata);

/* 1 when the token asked for replaces one the server refused. */
int mwi_sasld_token_refresh(const mwi_sasld *d);
/* The line to send, without CRLF (secret: wiped by the next call). */
const char *mwi_sasld_line(const mwi_sasld *d, size_t *len);
/* What a trace shows for it (masked), or NULL with trace_secrets. */
const char *mwi_sasld_shown(const mwi_sasld *d);
/* 1 while the line is a continuation (not a command line). */
int mwi_sasld_in_exchange(const mwi_sasld *d);
/* The first mechanism chosen (the strongest allowed). */
const char *mwi_sasld_mech_first(const mwi_sasld *d);
/* The mechanism being tried (or that succeeded), "" before the first. */
const char *mwi_sasld_mech(const mwi_sasld *d);
/* The error of FAIL, or why NEXT left a mechanism. */
const mw_error *mwi_sasld_error(const mwi_sasld *d);
/* After FAIL: 1 when the connection must not be used any more. */
int mwi_sasld_fatal(const mwi_sasld *d);
/* Frees the driver and wipes its secrets.  NULL is fine. */
void mwi_sasld_free(mwi_sasld *d);

#endif
