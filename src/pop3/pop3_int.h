/* Internal: the blocking POP3 session shared by the files of src/pop3: a
 * thin layer over the loop's POP3 machine, held between commands and
 * driven over a blocking stream (src/loop/pop3_held.h).  Here are the
 * argument checks, the session states and the results as pop3.h gives
 * them; the bytes, the replies and their errors are the machine's. */
#ifndef MW_POP3_INT_H
#define MW_POP3_INT_H

#include "loop/pop3_held.h"
#include "mailwire/pop3.h"

/* One state variable, changed only in pop3.c's set_state() (docs/ARCHITECTURE.md). */
enum pop3_state {
    P3_NEW = 0, /* nothing sent yet */
    P3_AUTH,    /* RFC 1939 §4 AUTHORIZATION */
    P3_TRANS,   /* TRANSACTION */
    P3_CLOSED,  /* QUIT done or connection closed on purpose */
    P3_BROKEN,  /* a network/TLS/protocol error: no more commands */
};

#define P3_MAX_CAPA 128

struct mw_pop3 {
    mw_error err;
    int state;
    mwi_p3h *h; /* the machine; NULL once closed */
    char *host;
    unsigned port;
    int tls;
    int msex;
    int want_pipelining;
    int pipelining; /* in use */
    unsigned window;

    char greeting[512];
    char *capa[P3_MAX_CAPA];
    size_t ncapa;
    int capa_known; /* CAPA answered +OK */
    char auth_used[48];
};

/* Refuses a command in the wrong state (MW_ESTATE). */
int mwi_pop3_require(mw_pop3 *p, int state, const char *what);
/* Checks a message number against the count. */
int mwi_pop3_check_msg(mw_pop3 *p, uint64_t msg);
/* The count known now (0 without one). */
int mwi_pop3_have_count(const mw_pop3 *p, uint64_t *count);
/* Runs commands on the machine (mwi_p3h_run): p->err is their error, and
 * the session is broken when the machine's job ended. */
int mwi_pop3_run(mw_pop3 *p, const mw_loop_pop3_cmd *cmds, size_t n, const mwi_p3h_opts *ro,
                 mwi_p3h_fn fn, void *ud);

#endif
