/* mailwire Tcl binding: ::mailwire::pop3::* — the POP3 engine (mw_pop3)
 * running over the Tcl channel that pop3.tcl opened with -socketcmd.
 *
 * The channel is the connection: the engine's stream is a callback stream
 * (mw_stream_callbacks, include/mailwire/net.h) whose read and write go
 * through the Tcl channel, so a tls::socket channel works as it does for
 * Tcllib.  The engine's own probe (CAPA right after the greeting) is not
 * sent: Tcllib never sends it, and its test servers answer in a fixed order.
 * The probe is answered locally with -ERR, which the engine takes as "no
 * CAPA" (RFC 2449 §5: CAPA is optional).  Only -stls, -pipeline or an
 * -auth other than user need the real list; then CAPA goes to the server.
 *
 * Every error text is what Tcllib's ::pop3::send raises — the server's
 * line, trimmed, from its fifth character — when the server said no, else
 * mailwire's own message. */
#include "mwtcl.h"
#include "pop3tcl.h"

#include <mailwire/pop3.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* ---- sessions ------------------------------------------------------------ */

static void sess_free(sess *s)
{
    if (s->p) mw_pop3_free(s->p);
    s->p = NULL;
    if (s->trace_cmd) Tcl_DecrRefCount(s->trace_cmd);
    if (s->tls_cmd) Tcl_DecrRefCount(s->tls_cmd);
    Tcl_Free((char *)s);
}

static void sess_forget(sess *s)
{
    Tcl_HashEntry *e = Tcl_FindHashEntry(s->table, s->name);
    if (e && Tcl_GetHashValue(e) == s) Tcl_DeleteHashEntry(e);
}

/* The program closed the channel (as Tcllib allows): the session goes, the
 * pop3.tcl state stays (::pop3::config still answers). */
static void on_chan_close(ClientData cd)
{
    sess *s = cd;
    s->closed = 1;
    s->chan = NULL;
    if (s->busy) return; /* freed when the engine call returns */
    sess_forget(s);
    sess_free(s);
}

static void sess_drop(sess *s)
{
    if (s->chan) Tcl_DeleteCloseHandler(s->chan, on_chan_close, s);
    sess_forget(s);
    sess_free(s);
}

static void table_delete(ClientData cd, Tcl_Interp *interp)
{
    Tcl_HashTable *t = cd;
    Tcl_HashSearch hs;
    for (Tcl_HashEntry *e = Tcl_FirstHashEntry(t, &hs); e; e = Tcl_NextHashEntry(&hs)) {
        sess *s = Tcl_GetHashValue(e);
        if (s->chan) Tcl_DeleteCloseHandler(s->chan, on_chan_close, s);
        sess_free(s);
    }
    Tcl_DeleteHashTable(t);
    Tcl_Free((char *)t);
}

/* Looks up the channel first, so a closed one gives Tcl's own
 * "can not find channel named" text, as Tcllib's puts does. */
static int get_sess(Tcl_Interp *interp, Tcl_HashTable *t, Tcl_Obj *name, sess **out)
{
    const char *n = Tcl_GetString(name);
    Tcl_Channel ch = Tcl_GetChannel(interp, n, NULL);
    if (!ch) return TCL_ERROR;
    Tcl_HashEntry *e = Tcl_FindHashEntry(t, n);
    sess *s = e ? Tcl_GetHashValue(e) : NULL;
    if (!s || s->chan != ch || !s->p) {
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("channel \"%s\" is not a pop3 session", n));
        return TCL_ERROR;
    }
    *out = s;
    return TCL_OK;
}

/* After an engine call: the error text Tcllib would raise. */
static int fail_err(sess *s, int rc, const char *stage, const mw_error *e)
{
    const char *line = s->last_recv;
    int server = rc == MW_ESERVER || rc == MW_ETEMP || rc == MW_EAUTH || rc == MW_EUNSUPPORTED ||
                 (rc == MW_EPROTO && strncmp(line, "+OK", 3) != 0);
    if (server && line[0]) {
        /* Tcllib: [string range [string trim $line] 4 end] */
        size_t a = 0, b = strlen(line);
        while (a < b && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r'))
            a++;
        while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t' || line[b - 1] == '\r'))
            b--;
        const char *t = b - a > 4 ? line + a + 4 : "";
        size_t tl = b - a > 4 ? b - a - 4 : 0;
        Tcl_Obj *m = Tcl_NewStringObj(t, (int)tl);
        Tcl_SetObjResult(s->interp, m);
        Tcl_SetErrorCode(s->interp, "MAILWIRE", "POP3", stage, mw_error_category(rc), (char *)NULL);
        return TCL_ERROR;
    }
    return mwtcl_error(s->interp, "POP3", stage, rc, e->message[0] ? e->message : mw_strerror(rc));
}

static int fail(sess *s, int rc, const char *stage)
{
    return fail_err(s, rc, stage, mw_pop3_error(s->p));
}

/* ---- text shapes ---------------------------------------------------------- */

typedef struct buf {
    char *d;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const char *d, size_t n)
{
    if (b->len + n > ((size_t)1 << 31) - 2) return MW_ETOOBIG; /* a Tcl object's limit */
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + n)
            c *= 2;
        char *nd = Tcl_AttemptRealloc(b->d, (unsigned)c);
        if (!nd) return MW_ENOMEM;
        b->d = nd;
        b->cap = c;
    }
    memcpy(b->d + b->len, d, n);
    b->len += n;
    return 0;
}

/* Tcllib's message shape: CRLF and a lone CR become LF (pop3.tcl RetrFast
 * and RetrSlow).  The bytes stay bytes (Tcllib reads in binary). */
static Tcl_Obj *lf_text(const char *d, size_t n)
{
    Tcl_Obj *o = Tcl_NewByteArrayObj(NULL, 0);
    unsigned char *out = Tcl_SetByteArrayLength(o, (int)n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\r') {
            out[k++] = '\n';
            if (i + 1 < n && d[i + 1] == '\n') i++;
        } else {
            out[k++] = (unsigned char)d[i];
        }
    }
    Tcl_SetByteArrayLength(o, (int)k);
    return o;
}

static int sink_buf(const char *data, size_t len, void *ud)
{
    return buf_add(ud, data, len);
}

typedef struct range_ctx {
    buf cur;
    Tcl_Obj *list;
    int err;
} range_ctx;

static int sink_range(uint64_t msg, const char *data, size_t len, const mw_pop3_retr_info *info,
                      void *ud)
{
    range_ctx *r = ud;
    if (!info) return buf_add(&r->cur, data, len);
    Tcl_ListObjAppendElement(NULL, r->list, lf_text(r->cur.d, r->cur.len));
    r->cur.len = 0;
    return 0;
}

/* ---- commands ------------------------------------------------------------- */

static const char *const mode_names[] = {"retr", "list", "slow", NULL};

/* What _open's arguments give. */
typedef struct open_cfg {
    mw_pop3_opts o;
    mw_net_opts net;
    mw_tls_opts tls;
    int want_capa, verify, requiretls;
    Tcl_Obj *trace, *tlscb;
} open_cfg;

/* _open's options (objv[5..]) into oc, over Tcllib's defaults.  long: one
 * flat switch, a case per option. */
static int open_options(Tcl_Interp *interp, int objc, Tcl_Obj *const objv[], open_cfg *oc)
{
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    mw_net_opts net = MW_NET_OPTS_INIT;
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    memset(oc, 0, sizeof *oc);
    oc->o = o;
    oc->net = net;
    oc->tls = tls;
    oc->verify = 1;
    oc->o.net = &oc->net;
    oc->o.tls_opts = &oc->tls;
    oc->o.user = Tcl_GetString(objv[3]);
    oc->o.password = Tcl_GetString(objv[4]);
    oc->o.auth = MW_POP3_AUTH_USER;
    oc->o.tls = MW_TLS_NONE;   /* Tcllib: plain text unless -stls (or a TLS -socketcmd) */
    oc->o.allow_plaintext = 1; /* Tcllib's API: plain USER/PASS unless -stls or a TLS socket */
    oc->o.pipelining = 0;
    static const char *const names[] = {
        "-msex",      "-retr-mode",  "-stls",       "-tls-callback", "-cafile",
        "-tlsverify", "-timeout",    "-auth",       "-mechanisms",   "-trace",
        "-pipeline",  "-servername", "-requiretls", "-tracesecrets", NULL};
    enum {
        O_MSEX,
        O_MODE,
        O_STLS,
        O_TLSCB,
        O_CAFILE,
        O_VERIFY,
        O_TIMEOUT,
        O_AUTH,
        O_MECHS,
        O_TRACE,
        O_PIPE,
        O_SNI,
        O_REQTLS,
        O_SECRETS
    };
    for (int i = 5; i < objc; i += 2) {
        int idx, b, v;
        if (Tcl_GetIndexFromObj(interp, objv[i], names, "option", 0, &idx) != TCL_OK)
            return TCL_ERROR;
        Tcl_Obj *val = objv[i + 1];
        switch (idx) {
        case O_MSEX:
            if (Tcl_GetBooleanFromObj(interp, val, &b) != TCL_OK) return TCL_ERROR;
            oc->o.msex = b;
            break;
        case O_MODE:
            if (Tcl_GetIndexFromObj(interp, val, mode_names, "mode", 0, &v) != TCL_OK)
                return TCL_ERROR;
            oc->o.retr_mode = v;
            break;
        case O_STLS:
            if (Tcl_GetBooleanFromObj(interp, val, &b) != TCL_OK) return TCL_ERROR;
            oc->o.tls = b ? MW_TLS_STARTTLS : MW_TLS_NONE;
            if (b) oc->want_capa = 1;
            break;
        case O_TLSCB:
            if (Tcl_GetCharLength(val)) oc->tlscb = val;
            break;
        case O_CAFILE:
            if (Tcl_GetCharLength(val)) oc->tls.ca_file = Tcl_GetString(val);
            break;
        case O_VERIFY:
            if (Tcl_GetBooleanFromObj(interp, val, &oc->verify) != TCL_OK) return TCL_ERROR;
            break;
        case O_TIMEOUT:
            if (Tcl_GetIntFromObj(interp, val, &v) != TCL_OK) return TCL_ERROR;
            if (v < 0) v = 0;
            oc->net.io_timeout_ms = v; /* 0: no deadline, as Tcllib */
            oc->net.connect_timeout_ms = v ? v : 30000;
            oc->tls.handshake_timeout_ms = v ? v : 30000;
            break;
        case O_AUTH: {
            static const char *const auths[] = {"auto", "user", "apop", "sasl", NULL};
            static const int amap[] = {MW_POP3_AUTH_AUTO, MW_POP3_AUTH_USER, MW_POP3_AUTH_APOP,
                                       MW_POP3_AUTH_SASL};
            if (Tcl_GetIndexFromObj(interp, val, auths, "auth method", 0, &v) != TCL_OK)
                return TCL_ERROR;
            oc->o.auth = amap[v];
            if (oc->o.auth != MW_POP3_AUTH_USER && oc->o.auth != MW_POP3_AUTH_APOP)
                oc->want_capa = 1;
            break;
        }
        case O_MECHS:
            if (Tcl_GetCharLength(val)) oc->o.sasl_mechs = Tcl_GetString(val);
            break;
        case O_TRACE:
            if (Tcl_GetCharLength(val)) oc->trace = val;
            break;
        case O_PIPE:
            if (Tcl_GetBooleanFromObj(interp, val, &b) != TCL_OK) return TCL_ERROR;
            oc->o.pipelining = b;
            if (b) oc->want_capa = 1;
            break;
        case O_SNI:
            if (Tcl_GetCharLength(val)) oc->tls.servername = Tcl_GetString(val);
            break;
        case O_REQTLS:
            if (Tcl_GetBooleanFromObj(interp, val, &oc->requiretls) != TCL_OK) return TCL_ERROR;
            break;
        case O_SECRETS:
            if (Tcl_GetBooleanFromObj(interp, val, &b) != TCL_OK) return TCL_ERROR;
            oc->o.trace_secrets = b;
            break;
        }
    }
    if (oc->requiretls && oc->o.tls == MW_TLS_NONE) oc->o.allow_plaintext = 0;
    return TCL_OK;
}

/* The stage an open failed in, as Tcllib names it: what was sent last. */
static const char *open_stage(const sess *s, int rc)
{
    const char *stage = "connect";
    if (!strcmp(s->last_sent, "CAPA") || !strcmp(s->last_sent, "STLS"))
        stage = rc == MW_ETLS && !strcmp(s->last_sent, "CAPA") ? "nostls" : "stls";
    else if (!strcmp(s->last_sent, "USER") || !strcmp(s->last_sent, "PASS") ||
             !strcmp(s->last_sent, "APOP") || !strcmp(s->last_sent, "AUTH"))
        stage = "login";
    else if (!strcmp(s->last_sent, "STAT"))
        stage = "stat";
    if (rc == MW_ETLS || rc == MW_ECERT) {
        if (strcmp(stage, "nostls")) stage = "tls";
    }
    if (rc == MW_EPOLICY) stage = "login";
    return stage;
}

/* A new session on channel ch (replacing the channel's old one), in
 * table t, with the engine's callbacks set in oc; NULL after a Tcl error. */
static sess *sess_new(Tcl_Interp *interp, Tcl_HashTable *t, Tcl_Channel ch, const char *cname,
                      const char *host, open_cfg *oc)
{
    Tcl_HashEntry *old = Tcl_FindHashEntry(t, cname);
    if (old) sess_drop(Tcl_GetHashValue(old));

    sess *s = (sess *)Tcl_Alloc(sizeof *s);
    memset(s, 0, sizeof *s);
    s->interp = interp;
    s->chan = ch;
    s->table = t;
    snprintf(s->name, sizeof s->name, "%s", cname);
    snprintf(s->host, sizeof s->host, "%s", host);
    s->eat_capa = !oc->want_capa;
    /* Only Tcl's own TCP channel with nothing stacked on it is read raw;
     * anything else (tls::socket's, a reflected channel) goes through
     * Tcl's buffers.  (Tcl_GetChannel gives the bottom of a stack.) */
    s->stacked =
        Tcl_GetTopChannel(ch) != ch || strcmp(Tcl_GetChannelType(ch)->typeName, "tcp") != 0;
    if (oc->trace) {
        s->trace_cmd = oc->trace;
        Tcl_IncrRefCount(oc->trace);
    }
    if (oc->tlscb) {
        s->tls_cmd = oc->tlscb;
        Tcl_IncrRefCount(oc->tlscb);
    }
    if (!oc->tls.servername) oc->tls.servername = s->host;
    if (s->tls_cmd) {
        oc->tls.policy = mwtcl_pop3_on_tls_peer;
        oc->tls.policy_userdata = s;
    } else if (!oc->verify) {
        oc->tls.insecure = 1;
    }
    oc->o.trace = mwtcl_pop3_on_trace;
    oc->o.trace_userdata = s;

    if (Tcl_SetChannelOption(interp, ch, "-translation", "binary") != TCL_OK ||
        Tcl_SetChannelOption(interp, ch, "-buffering", "none") != TCL_OK ||
        Tcl_SetChannelOption(interp, ch, "-blocking", "0") != TCL_OK) {
        sess_free(s);
        return NULL;
    }
    Tcl_CreateCloseHandler(ch, on_chan_close, s);
    int isnew;
    Tcl_SetHashValue(Tcl_CreateHashEntry(t, s->name, &isnew), s);
    return s;
}

/* _open chan host user password ?-option value ...? */
static int cmd_open(ClientData cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Tcl_HashTable *t = cd;
    if (objc < 5 || (objc - 5) % 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "chan host user password ?-option value ...?");
        return TCL_ERROR;
    }
    const char *cname = Tcl_GetString(objv[1]);
    Tcl_Channel ch = Tcl_GetChannel(interp, cname, NULL);
    if (!ch) return TCL_ERROR;
    open_cfg oc;
    if (open_options(interp, objc, objv, &oc) != TCL_OK) return TCL_ERROR;

    sess *s = sess_new(interp, t, ch, cname, Tcl_GetString(objv[2]), &oc);
    if (!s) return TCL_ERROR;
    static const mw_stream_ops ops = {mwtcl_pop3_chan_read, mwtcl_pop3_chan_write,
                                      mwtcl_pop3_chan_close};
    mw_error e;
    mw_error_clear(&e);
    mw_stream *st = NULL;
    int rc = mw_stream_callbacks(&st, &ops, s, &e);
    if (rc) {
        sess_drop(s);
        return mwtcl_error(interp, "POP3", "connect", rc, e.message);
    }
    oc.o.stream = st;
    s->busy = 1;
    mw_error_clear(&e);
    rc = mw_pop3_open(&s->p, s->host, &oc.o, &e);
    s->busy = 0;
    if (s->closed) {
        sess_forget(s);
        sess_free(s);
        return mwtcl_error(interp, "POP3", "connect", MW_ENET, "channel closed during open");
    }
    if (rc) {
        int r = fail_err(s, rc, open_stage(s, rc), &e);
        sess_drop(s);
        return r;
    }
    return TCL_OK;
}

typedef enum {
    OP_STATUS,
    OP_LAST,
    OP_LIST,
    OP_UIDL,
    OP_TOP,
    OP_RETR,
    OP_DELE,
    OP_CAPA,
    OP_QUIT,
    OP_FORGET,
    OP_MODE,
    OP_INFO,
    OP_NOOP,
    OP_RSET
} op_t;

static int parse_u64(Tcl_Interp *interp, Tcl_Obj *o, uint64_t *v)
{
    Tcl_WideInt w;
    if (Tcl_GetWideIntFromObj(interp, o, &w) != TCL_OK) return TCL_ERROR;
    if (w < 0) {
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("bad message number \"%s\"", Tcl_GetString(o)));
        return TCL_ERROR;
    }
    *v = (uint64_t)w;
    return TCL_OK;
}

/* list N / uidl N: "n value". */
static int op_listing_one(sess *s, op_t op, Tcl_Obj *num)
{
    Tcl_Interp *interp = s->interp;
    uint64_t a = 0, b = 0;
    int rc;
    if (parse_u64(interp, num, &a) != TCL_OK) return TCL_ERROR;
    char line[128];
    if (op == OP_LIST) {
        if ((rc = mw_pop3_list_one(s->p, a, &b))) return fail(s, rc, "list");
        snprintf(line, sizeof line, "%llu %llu", (unsigned long long)a, (unsigned long long)b);
    } else {
        char uid[71];
        if ((rc = mw_pop3_uidl_one(s->p, a, uid))) return fail(s, rc, "uidl");
        snprintf(line, sizeof line, "%llu %s", (unsigned long long)a, uid);
    }
    Tcl_SetObjResult(interp, Tcl_NewStringObj(line, -1));
    return TCL_OK;
}

/* list / uidl: Tcllib returns the listing as the server sent it, one
 * "n value" line each, LF-terminated. */
static int op_listing(sess *s, op_t op)
{
    Tcl_Obj *r = Tcl_NewObj();
    int rc;
    size_t n = 0;
    if (op == OP_LIST) {
        mw_pop3_listing *it = NULL;
        if ((rc = mw_pop3_list(s->p, &it, &n))) return fail(s, rc, "list");
        for (size_t i = 0; i < n; i++) {
            char line[64];
            int k = snprintf(line, sizeof line, "%llu %llu\n", (unsigned long long)it[i].msg,
                             (unsigned long long)it[i].size);
            Tcl_AppendToObj(r, line, k);
        }
        mw_pop3_list_free(it);
    } else {
        mw_pop3_uid *it = NULL;
        if ((rc = mw_pop3_uidl(s->p, &it, &n))) return fail(s, rc, "uidl");
        for (size_t i = 0; i < n; i++) {
            char line[128];
            int k =
                snprintf(line, sizeof line, "%llu %s\n", (unsigned long long)it[i].msg, it[i].uid);
            Tcl_AppendToObj(r, line, k);
        }
        mw_pop3_uidl_free(it);
    }
    Tcl_SetObjResult(s->interp, r);
    return TCL_OK;
}

/* retr A B: the messages A..B as a list, pipelined when the server can. */
static int op_retr(sess *s, uint64_t a, uint64_t b)
{
    int rc = 0;
    range_ctx r = {{0}, Tcl_NewListObj(0, NULL), 0};
    Tcl_IncrRefCount(r.list);
    mw_pop3_config c;
    mw_pop3_config_get(s->p, &c);
    if (a <= b && c.pipelining) {
        rc = mw_pop3_retr_range(s->p, a, b, -1, sink_range, &r);
    } else {
        /* One at a time, as Tcllib: with -retr-mode list that is
         * LIST n, RETR n for each message. */
        for (uint64_t m = a; m <= b && !rc; m++) {
            rc = mw_pop3_retr(s->p, m, sink_buf, &r.cur, NULL);
            if (!rc) {
                Tcl_ListObjAppendElement(NULL, r.list, lf_text(r.cur.d, r.cur.len));
                r.cur.len = 0;
            }
        }
    }
    Tcl_Free(r.cur.d);
    if (rc) {
        Tcl_DecrRefCount(r.list);
        return fail(s, rc, "retr");
    }
    Tcl_SetObjResult(s->interp, r.list);
    Tcl_DecrRefCount(r.list);
    return TCL_OK;
}

/* info: the session's settings as a dict. */
static int op_info(sess *s)
{
    mw_pop3_config c;
    mw_pop3_config_get(s->p, &c);
    Tcl_Obj *d = Tcl_NewDictObj();
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("auth", -1), Tcl_NewStringObj(c.auth_used, -1));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("pipelining", -1), Tcl_NewIntObj(c.pipelining));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("tls", -1),
                   Tcl_NewStringObj(c.tls == MW_TLS_STARTTLS   ? "stls"
                                    : c.tls == MW_TLS_IMPLICIT ? "implicit"
                                                               : "none",
                                    -1));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("greeting", -1),
                   Tcl_NewStringObj(c.greeting ? c.greeting : "", -1));
    Tcl_DictObjPut(NULL, d, Tcl_NewStringObj("count", -1),
                   Tcl_NewWideIntObj((Tcl_WideInt)mw_pop3_count(s->p)));
    Tcl_SetObjResult(s->interp, d);
    return TCL_OK;
}

static int run_op(sess *s, op_t op, int objc, Tcl_Obj *const objv[])
{
    Tcl_Interp *interp = s->interp;
    int rc = 0;
    uint64_t a = 0, b = 0;
    switch (op) {
    case OP_STATUS: {
        uint64_t c, oct;
        if ((rc = mw_pop3_stat(s->p, &c, &oct))) return fail(s, rc, "stat");
        Tcl_Obj *l = Tcl_NewListObj(0, NULL);
        Tcl_ListObjAppendElement(NULL, l, Tcl_NewWideIntObj((Tcl_WideInt)c));
        Tcl_ListObjAppendElement(NULL, l, Tcl_NewWideIntObj((Tcl_WideInt)oct));
        Tcl_SetObjResult(interp, l);
        return TCL_OK;
    }
    case OP_LAST:
        if ((rc = mw_pop3_last(s->p, &a))) return fail(s, rc, "last");
        Tcl_SetObjResult(interp, Tcl_NewWideIntObj((Tcl_WideInt)a));
        return TCL_OK;
    case OP_NOOP:
        if ((rc = mw_pop3_noop(s->p))) return fail(s, rc, "noop");
        return TCL_OK;
    case OP_RSET:
        if ((rc = mw_pop3_rset(s->p))) return fail(s, rc, "rset");
        return TCL_OK;
    case OP_LIST:
    case OP_UIDL:
        return objc == 3 ? op_listing_one(s, op, objv[2]) : op_listing(s, op);
    case OP_TOP: {
        if (parse_u64(interp, objv[2], &a) != TCL_OK || parse_u64(interp, objv[3], &b) != TCL_OK)
            return TCL_ERROR;
        buf m = {0};
        rc = mw_pop3_top(s->p, a, b, sink_buf, &m);
        if (rc) {
            Tcl_Free(m.d);
            return fail(s, rc, "top");
        }
        Tcl_SetObjResult(interp, lf_text(m.d, m.len));
        Tcl_Free(m.d);
        return TCL_OK;
    }
    case OP_RETR:
    case OP_DELE:
        if (parse_u64(interp, objv[2], &a) != TCL_OK || parse_u64(interp, objv[3], &b) != TCL_OK)
            return TCL_ERROR;
        if (op == OP_RETR) return op_retr(s, a, b);
        if (a <= b && (rc = mw_pop3_dele_range(s->p, a, b))) return fail(s, rc, "dele");
        return TCL_OK;
    case OP_CAPA: {
        if ((rc = mw_pop3_capa(s->p))) return fail(s, rc, "capa");
        Tcl_Obj *l = Tcl_NewListObj(0, NULL);
        size_t n = mw_pop3_capa_count(s->p);
        for (size_t i = 0; i < n; i++)
            Tcl_ListObjAppendElement(NULL, l, Tcl_NewStringObj(mw_pop3_capa_line(s->p, i), -1));
        Tcl_ListObjAppendElement(NULL, l, Tcl_NewObj()); /* Tcllib's trailing {} */
        Tcl_SetObjResult(interp, l);
        return TCL_OK;
    }
    case OP_QUIT: {
        int confirmed = 0;
        rc = mw_pop3_quit(s->p, &confirmed);
        if (rc) return fail(s, rc, "quit");
        return TCL_OK;
    }
    case OP_MODE: {
        mw_pop3_config c;
        mw_pop3_config_get(s->p, &c);
        Tcl_SetObjResult(interp, Tcl_NewStringObj(mode_names[c.retr_mode], -1));
        return TCL_OK;
    }
    case OP_INFO:
        return op_info(s);
    case OP_FORGET:
        return TCL_OK;
    }
    return TCL_OK;
}

/* _op name chan ?args? */
static int cmd_op(ClientData cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    Tcl_HashTable *t = cd;
    static const char *const ops[] = {"status", "last", "list", "uidl", "top",
                                      "retr",   "dele", "capa", "quit", "forget",
                                      "mode",   "info", "noop", "rset", NULL};
    static const int argc_min[] = {0, 0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0};
    static const int argc_max[] = {0, 0, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0};
    int idx;
    if (objc < 3) {
        Tcl_WrongNumArgs(interp, 1, objv, "op chan ?arg ...?");
        return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[1], ops, "op", 0, &idx) != TCL_OK) return TCL_ERROR;
    if (idx == OP_FORGET) {
        Tcl_HashEntry *e = Tcl_FindHashEntry(t, Tcl_GetString(objv[2]));
        if (e) sess_drop(Tcl_GetHashValue(e));
        return TCL_OK;
    }
    int n = objc - 3;
    if (n < argc_min[idx] || n > argc_max[idx]) {
        Tcl_WrongNumArgs(interp, 3, objv, "?arg ...?");
        return TCL_ERROR;
    }
    sess *s;
    if (get_sess(interp, t, objv[2], &s) != TCL_OK) return TCL_ERROR;
    if (s->busy) { /* called again from a -trace or -tls-callback script */
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("channel \"%s\" is busy with a POP3 command",
                                               Tcl_GetString(objv[2])));
        return TCL_ERROR;
    }
    s->busy = 1;
    s->last_recv[0] = 0;
    int r = run_op(s, (op_t)idx, objc - 1, objv + 1);
    s->busy = 0;
    if (s->closed) { /* the program closed the channel inside a trace callback */
        sess_forget(s);
        sess_free(s);
    } else if (idx == OP_QUIT) {
        sess_drop(s);
    }
    return r;
}

int mwtcl_pop3_init(Tcl_Interp *interp)
{
    Tcl_HashTable *t = (Tcl_HashTable *)Tcl_Alloc(sizeof *t);
    Tcl_InitHashTable(t, TCL_STRING_KEYS);
    Tcl_SetAssocData(interp, "mailwire-pop3", table_delete, t);
    Tcl_CreateObjCommand(interp, "::mailwire::pop3::_open", cmd_open, t, NULL);
    Tcl_CreateObjCommand(interp, "::mailwire::pop3::_op", cmd_op, t, NULL);
    return TCL_OK;
}
