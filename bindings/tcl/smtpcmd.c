/* mailwire Tcl binding: ::mailwire::smtp::_send — one SMTP session of
 * Tcllib's sendmessage (smtp.tcl builds the message and the envelope with
 * Tcllib's header rules; this sends it with mailwire's SMTP engine).
 *
 *   _send ?-option value ...?
 *     -servers list -ports list -portrule 1.4|1.5 -client name
 *     -usetls bool -tlspolicy cmd -username u -password p -debug bool
 *     -maxsecs n -queue bool -atleastone bool -sender addr
 *     -recipients list -data bytes -bcc list -bccdata bytes
 *     -cafile file -tlsverify bool -mechanisms list -allowplaintext bool
 *     -timeout ms -trace cmd
 *
 * Returns Tcllib's result: the rejected recipients of the message, each
 * {address code diagnostic}, with those of the Bcc digest appended as
 * Tcllib appends them (a string append). */
#include "mwtcl.h"

#include <mailwire/smtp.h>

#include <stdlib.h>
#include <string.h>

typedef struct ctx {
    Tcl_Interp *interp;
    Tcl_Obj *policy; /* -tlspolicy */
    Tcl_Obj *trace;  /* -trace */
    int debug;
} ctx;

static void on_trace(int dir, const char *line, size_t len, void *ud)
{
    ctx *c = ud;
    if (c->debug && dir != MW_TRACE_INFO) {
        /* [puts stderr], as Tcllib's -debug (so a program's own puts or a
         * test's capture sees it). */
        Tcl_Obj *v[3];
        v[0] = Tcl_NewStringObj("puts", 4);
        v[1] = Tcl_NewStringObj("stderr", 6);
        v[2] = Tcl_NewStringObj(dir == MW_TRACE_SEND ? "--> " : "<-- ", 4);
        Tcl_AppendToObj(v[2], line, (int)len);
        for (int i = 0; i < 3; i++)
            Tcl_IncrRefCount(v[i]);
        if (Tcl_EvalObjv(c->interp, 3, v, TCL_EVAL_GLOBAL) != TCL_OK)
            Tcl_BackgroundException(c->interp, TCL_ERROR);
        Tcl_ResetResult(c->interp);
        for (int i = 0; i < 3; i++)
            Tcl_DecrRefCount(v[i]);
    }
    if (!c->trace) return;
    Tcl_Obj *cmd = Tcl_DuplicateObj(c->trace);
    Tcl_IncrRefCount(cmd);
    const char *d = dir == MW_TRACE_SEND ? "send" : dir == MW_TRACE_RECV ? "recv" : "info";
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj(d, -1));
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj(line, (int)len));
    if (Tcl_EvalObjEx(c->interp, cmd, TCL_EVAL_GLOBAL) != TCL_OK)
        Tcl_BackgroundException(c->interp, TCL_ERROR);
    Tcl_DecrRefCount(cmd);
}

/* Tcllib: STARTTLS not offered means plain text without asking; refused
 * means the -tlspolicy command decides ("insecure" goes on). */
static int on_policy(int code, const char *reason, void *ud)
{
    ctx *c = ud;
    if (code == 0) return MW_SMTP_TLSPOLICY_INSECURE;
    if (!c->policy) return 0;
    Tcl_Obj *cmd = Tcl_DuplicateObj(c->policy);
    Tcl_IncrRefCount(cmd);
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewIntObj(code));
    Tcl_ListObjAppendElement(NULL, cmd, Tcl_NewStringObj(reason, -1));
    int r = 0;
    if (Tcl_EvalObjEx(c->interp, cmd, TCL_EVAL_GLOBAL) == TCL_OK)
        r = !strcmp(Tcl_GetStringResult(c->interp), "insecure") ? MW_SMTP_TLSPOLICY_INSECURE : 0;
    else
        Tcl_BackgroundException(c->interp, TCL_ERROR);
    Tcl_ResetResult(c->interp);
    Tcl_DecrRefCount(cmd);
    return r;
}

/* A Tcl list as a C string array (pointers into the list's elements). */
static int str_list(Tcl_Interp *interp, Tcl_Obj *l, const char ***out, size_t *n)
{
    int cnt;
    Tcl_Obj **el;
    if (Tcl_ListObjGetElements(interp, l, &cnt, &el) != TCL_OK) return TCL_ERROR;
    const char **a = (const char **)Tcl_Alloc(sizeof(char *) * (size_t)(cnt + 1));
    for (int i = 0; i < cnt; i++)
        a[i] = Tcl_GetString(el[i]);
    *out = a;
    *n = (size_t)cnt;
    return TCL_OK;
}

static void append_rejected(Tcl_Obj *list, const mw_smtp_result *r)
{
    for (size_t i = 0; r && i < r->nrcpt; i++) {
        const mw_smtp_rcpt *x = &r->rcpt[i];
        if (x->accepted || x->code == 0) continue;
        Tcl_Obj *e = Tcl_NewListObj(0, NULL);
        Tcl_ListObjAppendElement(NULL, e, Tcl_NewStringObj(x->address, -1));
        Tcl_ListObjAppendElement(NULL, e, Tcl_NewIntObj(x->code));
        /* Tcllib's diagnostic is the reply after its code, enhanced code
         * included. */
        Tcl_Obj *d = Tcl_NewStringObj(x->enhanced, -1);
        if (x->enhanced[0]) Tcl_AppendToObj(d, " ", 1);
        Tcl_AppendToObj(d, x->text ? x->text : "", -1);
        Tcl_ListObjAppendElement(NULL, e, d);
        Tcl_ListObjAppendElement(NULL, list, e);
    }
}

/* Tcllib returns the list of rejected recipients, without an error, when
 * RCPTs were refused and no DATA followed. */
static int rcpt_refusal(const mw_smtp_result *r)
{
    if (!r || r->sent) return 0;
    int bad = 0;
    for (size_t i = 0; i < r->nrcpt; i++)
        if (!r->rcpt[i].accepted && r->rcpt[i].code) bad++;
    return bad > 0;
}

static int send_error(Tcl_Interp *interp, int rc, const mw_error *e, const mw_smtp_result *r)
{
    /* Tcllib: "<code>: <diagnostic>" for a refused MAIL, DATA or end of data. */
    if ((rc == MW_ESERVER || rc == MW_ETEMP) && e->reply_code) {
        Tcl_Obj *m = Tcl_ObjPrintf("%d: ", e->reply_code);
        if (e->enhanced[0]) Tcl_AppendStringsToObj(m, e->enhanced, " ", (char *)NULL);
        Tcl_AppendToObj(m, e->reply, -1);
        Tcl_SetObjResult(interp, m);
        Tcl_SetErrorCode(interp, "MAILWIRE", "SMTP", "send", mw_error_category(rc), (char *)NULL);
        return TCL_ERROR;
    }
    (void)r;
    return mwtcl_error(interp, "SMTP", "send", rc, e->message[0] ? e->message : mw_strerror(rc));
}

/* One message of a session (and its Bcc digest); *out gets Tcllib's result
 * with a reference held. */
static int send_message(Tcl_Interp *interp, mw_smtp *s, const char *sender, const char **rcpts,
                        size_t nrc, Tcl_Obj *data, const char **bcc, size_t nbcc, Tcl_Obj *bccdata,
                        int alo, Tcl_Obj **out)
{
    int len, ret = TCL_ERROR;
    mw_smtp_result *r1 = NULL, *r2 = NULL;
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.data = (const char *)Tcl_GetByteArrayFromObj(data, &len);
    m.len = (size_t)len;
    m.originator = sender;
    m.recipients = rcpts;
    m.nrecipients = nrc;
    m.atleastone = alo;
    m.rewrite_headers = 0; /* smtp.tcl applied Tcllib's rules already */
    m.use_chunking = 0;    /* DATA, as Tcllib */
    int rc = mw_smtp_send(s, &m, &r1);
    Tcl_Obj *res = Tcl_NewListObj(0, NULL);
    Tcl_IncrRefCount(res);
    if (rc && !rcpt_refusal(r1)) {
        ret = send_error(interp, rc, mw_smtp_error(s), r1);
        goto out;
    }
    append_rejected(res, r1);
    if (bcc && nbcc && bccdata) {
        mw_smtp_msg b = MW_SMTP_MSG_INIT;
        b.data = (const char *)Tcl_GetByteArrayFromObj(bccdata, &len);
        b.len = (size_t)len;
        b.originator = sender;
        b.recipients = bcc;
        b.nrecipients = nbcc;
        b.atleastone = alo;
        b.rewrite_headers = 0;
        b.use_chunking = 0;
        rc = mw_smtp_send(s, &b, &r2);
        if (rc && !rcpt_refusal(r2)) {
            ret = send_error(interp, rc, mw_smtp_error(s), r2);
            goto out;
        }
        /* Tcllib: [append cres $cres2] — a string append, kept. */
        Tcl_Obj *more = Tcl_NewListObj(0, NULL);
        Tcl_IncrRefCount(more);
        append_rejected(more, r2);
        Tcl_AppendObjToObj(res, more);
        Tcl_DecrRefCount(more);
    }
    *out = res;
    res = NULL;
    ret = TCL_OK;
out:
    if (res) Tcl_DecrRefCount(res);
    mw_smtp_result_free(r1);
    mw_smtp_result_free(r2);
    return ret;
}

/* _send's options. */
typedef struct send_args {
    Tcl_Obj *servers, *ports, *rcpts, *bcc, *data, *bccdata, *messages;
    const char *client, *user, *pass, *sender, *cafile, *mechs;
    int usetls, debug, maxsecs, queue, alo, verify, plain, timeout, rule15;
    ctx c;
} send_args;

/* _send's options into a, over Tcllib's defaults.  long: one flat switch,
 * a case per option. */
static int send_options(Tcl_Interp *interp, int objc, Tcl_Obj *const objv[], send_args *a)
{
    memset(a, 0, sizeof *a);
    a->sender = "";
    a->usetls = 1;
    a->maxsecs = 120;
    a->verify = 1;
    a->plain = -1;
    a->timeout = -1;
    a->c.interp = interp;
    static const char *const names[] = {
        "-servers",   "-ports",      "-portrule",       "-client",  "-usetls",  "-tlspolicy",
        "-username",  "-password",   "-debug",          "-maxsecs", "-queue",   "-atleastone",
        "-sender",    "-recipients", "-data",           "-bcc",     "-bccdata", "-cafile",
        "-tlsverify", "-mechanisms", "-allowplaintext", "-timeout", "-trace",   "-messages",
        NULL};
    enum {
        O_SERVERS,
        O_PORTS,
        O_PORTRULE,
        O_CLIENT,
        O_USETLS,
        O_POLICY,
        O_USER,
        O_PASS,
        O_DEBUG,
        O_MAXSECS,
        O_QUEUE,
        O_ALO,
        O_SENDER,
        O_RCPTS,
        O_DATA,
        O_BCC,
        O_BCCDATA,
        O_CAFILE,
        O_VERIFY,
        O_MECHS,
        O_PLAIN,
        O_TIMEOUT,
        O_TRACE,
        O_MESSAGES
    };
    for (int i = 1; i < objc; i += 2) {
        int idx;
        if (Tcl_GetIndexFromObj(interp, objv[i], names, "option", 0, &idx) != TCL_OK)
            return TCL_ERROR;
        Tcl_Obj *v = objv[i + 1];
        int ok = TCL_OK;
        switch (idx) {
        case O_SERVERS:
            a->servers = v;
            break;
        case O_PORTS:
            a->ports = v;
            break;
        case O_PORTRULE:
            a->rule15 = !strcmp(Tcl_GetString(v), "1.5");
            break;
        case O_CLIENT:
            a->client = Tcl_GetString(v);
            break;
        case O_USETLS:
            ok = Tcl_GetBooleanFromObj(interp, v, &a->usetls);
            break;
        case O_POLICY:
            if (Tcl_GetCharLength(v)) a->c.policy = v;
            break;
        case O_USER:
            a->user = Tcl_GetString(v);
            break;
        case O_PASS:
            a->pass = Tcl_GetString(v);
            break;
        case O_DEBUG:
            ok = Tcl_GetBooleanFromObj(interp, v, &a->debug);
            break;
        case O_MAXSECS:
            ok = Tcl_GetIntFromObj(interp, v, &a->maxsecs);
            break;
        case O_QUEUE:
            ok = Tcl_GetBooleanFromObj(interp, v, &a->queue);
            break;
        case O_ALO:
            ok = Tcl_GetBooleanFromObj(interp, v, &a->alo);
            break;
        case O_SENDER:
            a->sender = Tcl_GetString(v);
            break;
        case O_RCPTS:
            a->rcpts = v;
            break;
        case O_DATA:
            a->data = v;
            break;
        case O_BCC:
            a->bcc = v;
            break;
        case O_BCCDATA:
            a->bccdata = v;
            break;
        case O_CAFILE:
            a->cafile = Tcl_GetString(v);
            break;
        case O_VERIFY:
            ok = Tcl_GetBooleanFromObj(interp, v, &a->verify);
            break;
        case O_MECHS:
            if (Tcl_GetCharLength(v)) a->mechs = Tcl_GetString(v);
            break;
        case O_PLAIN:
            ok = Tcl_GetBooleanFromObj(interp, v, &a->plain);
            break;
        case O_TIMEOUT:
            ok = Tcl_GetIntFromObj(interp, v, &a->timeout);
            break;
        case O_TRACE:
            if (Tcl_GetCharLength(v)) a->c.trace = v;
            break;
        case O_MESSAGES:
            a->messages = v;
            break;
        }
        if (ok != TCL_OK) return TCL_ERROR;
    }
    if (!a->data && !a->messages) return mwtcl_error(interp, "SMTP", "args", MW_EINVAL, "no -data");
    a->c.debug = a->debug;
    return TCL_OK;
}

/* Tcllib's server loop: 1.4.5 takes -ports by an index that moves on only
 * when EHLO/HELO was refused (so servers reuse a port after a refused
 * connection); 1.5 pairs them (a missing port is 25).  The first session
 * opened goes to *out. */
static int open_first(Tcl_Interp *interp, send_args *a, const char **srv, size_t nsrv,
                      const char **port_s, size_t nport, mw_smtp **out)
{
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = a->cafile && *a->cafile ? a->cafile : NULL;
    tls.insecure = !a->verify;
    mw_net_opts net = MW_NET_OPTS_INIT;
    if (a->timeout >= 0) {
        net.io_timeout_ms = a->timeout;
        if (a->timeout) net.connect_timeout_ms = a->timeout;
    }
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    o.client = a->client && *a->client ? a->client : NULL;
    o.tls = a->usetls ? MW_TLS_OPPORTUNISTIC : MW_TLS_NONE;
    o.tls_opts = &tls;
    o.tlspolicy = on_policy;
    o.tlspolicy_userdata = &a->c;
    o.net = &net;
    o.user = a->user && *a->user ? a->user : NULL;
    o.password = a->pass && *a->pass ? a->pass : NULL;
    o.sasl_mechs = a->mechs;
    /* Credentials in clear only when the program turned TLS off itself
     * (-usetls 0) or says so (-allowplaintext 1). */
    o.allow_plaintext = a->plain >= 0 ? a->plain : !a->usetls;
    o.queue = a->queue;
    o.trace = on_trace;
    o.trace_userdata = &a->c;
    mw_error err;
    mw_error_clear(&err);
    int rc = MW_ENET;
    size_t pidx = 0;
    mw_smtp *s = NULL;
    for (size_t i = 0; i < nsrv && !s; i++) {
        if (!*srv[i]) continue;
        size_t k = a->rule15 ? i : pidx;
        unsigned port = 25;
        if (k < nport && *port_s[k]) {
            int p;
            if (Tcl_GetInt(interp, port_s[k], &p) != TCL_OK) return TCL_ERROR;
            port = (unsigned)p;
        }
        const char *one[1] = {srv[i]};
        o.servers = one;
        o.nservers = 1;
        o.ports = &port;
        o.nports = 1;
        mw_error_clear(&err);
        rc = mw_smtp_open(&s, &o, &err);
        if (rc && (rc == MW_ESERVER || rc == MW_EPROTO)) pidx++;
    }
    if (!s)
        return mwtcl_error(interp, "SMTP", "connect", rc,
                           err.message[0] ? err.message : mw_strerror(rc));
    *out = s;
    return TCL_OK;
}

/* One element of -messages, {-sender s -recipients l -data d ?-bcc l
 * -bccdata d?}, sent; *one gets its result (a reference held). */
static int batch_message(Tcl_Interp *interp, mw_smtp *s, Tcl_Obj *msg, int alo, Tcl_Obj **one)
{
    Tcl_Obj *d = NULL, *bd = NULL, *rl = NULL, *bl = NULL;
    const char *sd = "";
    int ne;
    Tcl_Obj **e;
    if (Tcl_ListObjGetElements(interp, msg, &ne, &e) != TCL_OK || ne % 2)
        return mwtcl_error(interp, "SMTP", "args", MW_EINVAL, "bad -messages element");
    for (int k = 0; k < ne; k += 2) {
        const char *key = Tcl_GetString(e[k]);
        if (!strcmp(key, "-sender"))
            sd = Tcl_GetString(e[k + 1]);
        else if (!strcmp(key, "-recipients"))
            rl = e[k + 1];
        else if (!strcmp(key, "-data"))
            d = e[k + 1];
        else if (!strcmp(key, "-bcc"))
            bl = e[k + 1];
        else if (!strcmp(key, "-bccdata"))
            bd = e[k + 1];
    }
    const char **r_l = NULL, **b_l = NULL;
    size_t nr = 0, nb = 0;
    int ok = d && (!rl || str_list(interp, rl, &r_l, &nr) == TCL_OK) &&
             (!bl || str_list(interp, bl, &b_l, &nb) == TCL_OK);
    if (ok)
        ok = send_message(interp, s, sd, r_l, nr, d, b_l, nb, bd, alo, one) == TCL_OK;
    else if (!d)
        mwtcl_error(interp, "SMTP", "args", MW_EINVAL, "a message without -data");
    Tcl_Free((char *)r_l);
    Tcl_Free((char *)b_l);
    return ok ? TCL_OK : TCL_ERROR;
}

/* The batch extension: each element of -messages sent in turn over s; one
 * result per message in *out (a reference held). */
static int send_batch(Tcl_Interp *interp, mw_smtp *s, Tcl_Obj *messages, int alo, Tcl_Obj **out)
{
    int nm;
    Tcl_Obj **ms;
    if (Tcl_ListObjGetElements(interp, messages, &nm, &ms) != TCL_OK) return TCL_ERROR;
    Tcl_Obj *res = Tcl_NewListObj(0, NULL);
    Tcl_IncrRefCount(res);
    for (int i = 0; i < nm; i++) {
        Tcl_Obj *one = NULL;
        if (batch_message(interp, s, ms[i], alo, &one) != TCL_OK) {
            Tcl_DecrRefCount(res);
            return TCL_ERROR;
        }
        Tcl_ListObjAppendElement(NULL, res, one);
        Tcl_DecrRefCount(one);
    }
    *out = res;
    return TCL_OK;
}

static int cmd_send(ClientData cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    (void)cd;
    if (objc % 2 != 1) {
        Tcl_WrongNumArgs(interp, 1, objv, "?-option value ...?");
        return TCL_ERROR;
    }
    send_args a;
    if (send_options(interp, objc, objv, &a) != TCL_OK) return TCL_ERROR;
    const char **srv = NULL, **rc_list = NULL, **bcc_list = NULL, **port_s = NULL;
    size_t nsrv = 0, nrc = 0, nbcc = 0, nport = 0;
    int ret = TCL_ERROR;
    mw_smtp *s = NULL;
    if (a.servers && str_list(interp, a.servers, &srv, &nsrv) != TCL_OK) goto out;
    if (a.ports && str_list(interp, a.ports, &port_s, &nport) != TCL_OK) goto out;
    if (a.rcpts && str_list(interp, a.rcpts, &rc_list, &nrc) != TCL_OK) goto out;
    if (a.bcc && str_list(interp, a.bcc, &bcc_list, &nbcc) != TCL_OK) goto out;
    if (nsrv == 0) {
        srv = (const char **)Tcl_Alloc(sizeof(char *));
        srv[0] = "localhost";
        nsrv = 1;
    }
    if ((ret = open_first(interp, &a, srv, nsrv, port_s, nport, &s)) != TCL_OK) goto out;
    if (a.maxsecs > 0) mw_smtp_set_maxtime(s, a.maxsecs * 1000);
    Tcl_Obj *res;
    if (!a.messages)
        ret = send_message(interp, s, a.sender, rc_list, nrc, a.data, bcc_list, nbcc, a.bccdata,
                           a.alo, &res);
    else
        ret = send_batch(interp, s, a.messages, a.alo, &res);
    if (ret != TCL_OK) goto out;
    mw_smtp_quit(s);
    Tcl_SetObjResult(interp, res);
    Tcl_DecrRefCount(res);
out:
    if (s) mw_smtp_free(s);
    Tcl_Free((char *)srv);
    Tcl_Free((char *)port_s);
    Tcl_Free((char *)rc_list);
    Tcl_Free((char *)bcc_list);
    return ret;
}

int mwtcl_smtp_init(Tcl_Interp *interp)
{
    Tcl_CreateObjCommand(interp, "::mailwire::smtp::_send", cmd_send, NULL, NULL);
    return TCL_OK;
}
