/* mailwire Tcl binding: the Tcl channel of a POP3 session as the engine's
 * stream (mw_stream_callbacks, include/mailwire/net.h), and the engine's
 * trace and TLS policy callbacks into the session's Tcl scripts. */
#include "mwtcl.h"
#include "pop3tcl.h"

#include <mailwire/pop3.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* ---- the channel as an mw_stream -------------------------------------- */

static int wait_chan(sess *s, short events, int64_t deadline)
{
    ClientData h;
    if (Tcl_GetChannelHandle(s->chan, events == POLLIN ? TCL_READABLE : TCL_WRITABLE, &h) != TCL_OK)
        return MW_ENET;
    struct pollfd pf = {(int)(intptr_t)h, events, 0};
    for (;;) {
        int ms = -1;
        if (deadline != MW_NO_DEADLINE) {
            int64_t left = deadline - mw_now_ms();
            if (left <= 0) return MW_ETIMEOUT;
            ms = left > 3600000 ? 3600000 : (int)left;
        }
        int r = poll(&pf, 1, ms);
        if (r > 0) return 0;
        if (r < 0 && errno != EINTR) return MW_ENET;
    }
}

long mwtcl_pop3_chan_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    sess *s = ud;
    if (s->inj_off < s->inj_len) {
        size_t n = s->inj_len - s->inj_off;
        if (n > len) n = len;
        memcpy(buf, s->inject + s->inj_off, n);
        s->inj_off += n;
        return (long)n;
    }
    if (len > 1 << 20) len = 1 << 20;
    for (;;) {
        if (s->closed) return MW_ENET;
        /* A plain socket: straight from the driver into the engine's
         * buffer (what Tcl already buffered comes first).  A stacked
         * channel (tls::socket) through Tcl's buffers, which drive its
         * handshake. */
        int n = s->stacked ? Tcl_Read(s->chan, buf, (int)len) : Tcl_ReadRaw(s->chan, buf, (int)len);
        if (n > 0) return n;
        if (Tcl_Eof(s->chan)) return 0;
        if (n < 0 && Tcl_GetErrno() != EAGAIN) return MW_ENET;
        int rc = wait_chan(s, POLLIN, deadline);
        if (rc) return rc;
    }
}

long mwtcl_pop3_chan_write(const void *buf, size_t len, int64_t deadline, void *ud)
{
    sess *s = ud;
    const char *b = buf;
    size_t skip = 0;
    if (s->eat_capa) {
        s->eat_capa = 0;
        if (len >= 6 && !memcmp(b, "CAPA\r\n", 6))
            skip = 6;
        else if (len >= 5 && !memcmp(b, "CAPA\n", 5))
            skip = 5;
        if (skip) {
            memcpy(s->inject, "-ERR not sent\r\n", 15);
            s->inj_len = 15;
            s->inj_off = 0;
        }
    }
    if (s->closed) return MW_ENET;
    const char *p = b + skip;
    size_t left = len - skip;
    if (!s->stacked) {
        /* A plain socket: straight to the driver, waiting (up to the
         * deadline) while the socket's buffer is full. */
        while (left > 0) {
            int chunk = left > (1 << 30) ? 1 << 30 : (int)left;
            int n = Tcl_WriteRaw(s->chan, p, chunk);
            if (n > 0) {
                p += n;
                left -= (size_t)n;
                continue;
            }
            if (n < 0 && Tcl_GetErrno() != EAGAIN) return MW_ENET;
            int rc = wait_chan(s, POLLOUT, deadline);
            if (rc) return rc;
            if (s->closed) return MW_ENET;
        }
    } else if (left > 0) {
        /* A stacked channel (tls::socket): Tcl's own write, in blocking
         * mode for the while (a non-blocking flush would be left to an
         * event loop that is not running).  Commands are short; the
         * deadline is not watched here. */
        if (Tcl_SetChannelOption(NULL, s->chan, "-blocking", "1") != TCL_OK) return MW_ENET;
        int bad = Tcl_Write(s->chan, p, (int)left) < 0 || Tcl_Flush(s->chan) != TCL_OK;
        if (Tcl_SetChannelOption(NULL, s->chan, "-blocking", "0") != TCL_OK) bad = 1;
        if (bad) return MW_ENET;
    }
    return (long)len;
}

void mwtcl_pop3_chan_close(void *ud)
{
    (void)ud; /* the channel belongs to the program (pop3.tcl closes it) */
}

/* ---- trace and TLS policy ---------------------------------------------- */

void mwtcl_pop3_on_trace(int dir, const char *line, size_t len, void *ud)
{
    sess *s = ud;
    if (dir == MW_TRACE_SEND) {
        size_t k = 0;
        while (k < len && k < sizeof s->last_sent - 1 && line[k] != ' ')
            k++;
        memcpy(s->last_sent, line, k);
        s->last_sent[k] = 0;
        if (s->eat_capa && len == 4 && !memcmp(line, "CAPA", 4)) {
            s->hide_recv = 1;
            return;
        }
    } else if (dir == MW_TRACE_RECV) {
        if (s->hide_recv) {
            s->hide_recv = 0;
            return;
        }
        size_t n = len < sizeof s->last_recv - 1 ? len : sizeof s->last_recv - 1;
        memcpy(s->last_recv, line, n);
        s->last_recv[n] = 0;
    }
    if (!s->trace_cmd) return;
    Tcl_Obj *cmd = Tcl_DuplicateObj(s->trace_cmd);
    Tcl_IncrRefCount(cmd);
    const char *d = dir == MW_TRACE_SEND ? "send" : dir == MW_TRACE_RECV ? "recv" : "info";
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj(d, -1));
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj(line, (int)len));
    if (Tcl_EvalObjEx(s->interp, cmd, TCL_EVAL_GLOBAL) != TCL_OK)
        Tcl_BackgroundException(s->interp, TCL_ERROR);
    Tcl_DecrRefCount(cmd);
}

/* -tls-callback: called as tcl-tls calls its -command at verification,
 * "cmd verify channel depth cert status error"; a true result accepts. */
int mwtcl_pop3_on_tls_peer(const mw_tls_peer *peer, void *ud)
{
    sess *s = ud;
    if (!s->tls_cmd) return peer->verified ? 0 : 1;
    Tcl_Obj *cmd = Tcl_DuplicateObj(s->tls_cmd);
    Tcl_IncrRefCount(cmd);
    Tcl_Obj *cert = Tcl_NewListObj(0, NULL);
    Tcl_ListObjAppendElement(NULL, cert, Tcl_NewStringObj("subject", -1));
    Tcl_ListObjAppendElement(NULL, cert, Tcl_NewStringObj(peer->subject, -1));
    Tcl_ListObjAppendElement(NULL, cert, Tcl_NewStringObj("issuer", -1));
    Tcl_ListObjAppendElement(NULL, cert, Tcl_NewStringObj(peer->issuer, -1));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", peer->cert_sha256[i]);
    Tcl_ListObjAppendElement(NULL, cert, Tcl_NewStringObj("sha256_hash", -1));
    Tcl_ListObjAppendElement(NULL, cert, Tcl_NewStringObj(hex, 64));
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj("verify", -1));
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj(s->name, -1));
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewIntObj(0));
    Tcl_ListObjAppendElement(NULL, cmd, cert);
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewIntObj(peer->verified));
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj(peer->verify_error, -1));
    int ok = 0;
    if (Tcl_EvalObjEx(s->interp, cmd, TCL_EVAL_GLOBAL) == TCL_OK)
        Tcl_GetBooleanFromObj(NULL, Tcl_GetObjResult(s->interp), &ok);
    else
        Tcl_BackgroundException(s->interp, TCL_ERROR);
    Tcl_ResetResult(s->interp);
    Tcl_DecrRefCount(cmd);
    return ok ? 0 : 1;
}
