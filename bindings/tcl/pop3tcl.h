/* mailwire Tcl binding: what the POP3 command's files share: the session
 * of one channel (pop3cmd.c: the commands; pop3chan.c: the channel as the
 * engine's stream, its trace and TLS policy callbacks). */
#ifndef MWTCL_POP3TCL_H
#define MWTCL_POP3TCL_H

#include <tcl.h>

#include <mailwire/pop3.h>

#include <stddef.h>
#include <stdint.h>

typedef struct sess {
    Tcl_Interp *interp;
    Tcl_Channel chan;
    char name[128];
    mw_pop3 *p;
    Tcl_HashTable *table;
    int eat_capa;    /* the engine's first CAPA is answered here */
    int hide_recv;   /* hide the local answer from -trace */
    char inject[32]; /* the local answer, served before channel data */
    size_t inj_len, inj_off;
    char last_recv[512]; /* the last status line received (for error texts) */
    char last_sent[16];  /* keyword of the last command sent */
    int busy;            /* inside an engine call */
    int closed;          /* the program closed the channel */
    int stacked;         /* not a plain Tcl TCP channel (e.g. tls::socket's) */
    Tcl_Obj *trace_cmd;
    Tcl_Obj *tls_cmd;
    char host[256];
} sess;

/* The mw_stream_ops of a session's channel (ud: the sess): reads serve the
 * local answer to the engine's CAPA probe first; writes drop that probe. */
long mwtcl_pop3_chan_read(void *buf, size_t len, int64_t deadline, void *ud);
long mwtcl_pop3_chan_write(const void *buf, size_t len, int64_t deadline, void *ud);
void mwtcl_pop3_chan_close(void *ud);
/* The engine's trace: the last command keyword and status line kept for
 * error texts, then the -trace script. */
void mwtcl_pop3_on_trace(int dir, const char *line, size_t len, void *ud);
/* -tls-callback: called as tcl-tls calls its -command at verification,
 * "cmd verify channel depth cert status error"; a true result accepts. */
int mwtcl_pop3_on_tls_peer(const mw_tls_peer *peer, void *ud);

#endif
