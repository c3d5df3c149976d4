/* The POP3 job's command sequence (mw_loop_add_pop3_cmds, pop3_job.h):
 * after the login a STAT, as mw_pop3_open sends it, then each command as
 * the blocking call of pop3.h sends it, one at a time, and QUIT.  The
 * checks and the words of errors are src/pop3's (pop3.c, pop3_retr.c),
 * so both APIs say the same bytes and fail alike. */
#include "loop/pop3_job.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What src/pop3 calls a command in its errors ("LIST" for "LIST 3"). */
static const char *op_what(int op)
{
    static const char *const w[] = {"",     "STAT", "LIST", "UIDL", "RETR", "TOP",
                                    "DELE", "NOOP", "RSET", "LAST", "CAPA"};
    return op >= MW_LOOP_POP3_STAT && op <= MW_LOOP_POP3_CAPA ? w[op] : "?";
}

static const mw_loop_pop3_cmd *cur(const p3l *p)
{
    return &p->cmds[p->next_cmd];
}

/* A run of RETR, TOP or DELE (mw_loop_pop3_cmd.last). */
static int is_run(const mw_loop_pop3_cmd *c)
{
    return c->last &&
           (c->op == MW_LOOP_POP3_RETR || c->op == MW_LOOP_POP3_TOP || c->op == MW_LOOP_POP3_DELE);
}

/* A run's i-th message: its number, or run_list's (1-based). */
static uint64_t run_num(const p3l *p, uint64_t i)
{
    return p->run_list ? p->run_list[i - 1].msg : i;
}

/* The message the reply being read is about. */
static uint64_t cur_num(const p3l *p)
{
    return is_run(cur(p)) ? run_num(p, p->run_got) : cur(p)->msg;
}

static void next_cmd(p3l *p);

static int deliver_l(p3l *p, int kind, const char *data, size_t len, uint64_t msg, uint64_t value,
                     const char *uid, uint64_t lines)
{
    if (!p->reply) return 0;
    mw_loop_pop3_reply r = {p->next_cmd, cur(p)->op, kind, data, len, msg, value, uid, lines};
    int rc = p->reply(p->job, &r, p->reply_ud);
    if (rc && p->held) {
        /* src/pop3's callbacks: the reply is read to its end, a run sends
         * no more (what is in flight is read), the owner says why. */
        if (!p->stop_rc) p->stop_rc = rc;
        if (is_run(cur(p)) && p->run_end >= p->run_next) p->run_end = p->run_next - 1;
        return 0;
    }
    if (rc) mwi_p3l_end(p, rc, "%s: stopped by the reply callback (%d)", p->cur_cmd, rc);
    return rc;
}

/* A command failed.  Held, the job goes on with the next (src/pop3: a
 * -ERR leaves the session usable) and the error is the command's;
 * otherwise the job ends with it. */
static void cmd_failed(p3l *p, int rc, const char *msg)
{
    if (!p->held) {
        mwi_p3l_end(p, rc, "%s", msg);
        return;
    }
    p->cmd_err = p->job->err;
    p->cmd_err.code = rc;
    snprintf(p->cmd_err.message, sizeof p->cmd_err.message, "%s", msg);
    mw_error_clear(&p->job->err);
    deliver_l(p, P3L_FAIL, NULL, 0, 0, (uint64_t)rc, NULL, 0);
    p->next_cmd++;
    next_cmd(p);
}

static int deliver(p3l *p, int kind, const char *data, size_t len, uint64_t msg, uint64_t value,
                   const char *uid)
{
    return deliver_l(p, kind, data, len, msg, value, uid, 0);
}

static void run_start_at(p3l *p, uint64_t start);

/* Sends the run's next commands, as many as the window lets (src/pop3's
 * retr_run and dele_run: the window is refilled after every reply). */
static void run_send(p3l *p)
{
    const mw_loop_pop3_cmd *c = cur(p);
    uint64_t window = p->capa_pipelining ? (p->run_max_cmds ? p->run_max_cmds : p->window) : 1;
    while (!p->job->done && p->run_next <= p->run_end && p->run_next - p->run_got < window) {
        /* A window in bytes (mw_pop3_retr_msgs): the LIST sizes of what
         * is unanswered, always at least one command. */
        uint64_t sz = p->run_list ? p->run_list[p->run_next - 1].size : 0;
        if (p->run_max_bytes && p->run_next > p->run_got &&
            (p->run_bytes > p->run_max_bytes || sz > p->run_max_bytes - p->run_bytes))
            break;
        char line[64];
        unsigned long long m = (unsigned long long)run_num(p, p->run_next);
        if (c->op == MW_LOOP_POP3_TOP)
            snprintf(line, sizeof line, "TOP %llu %llu", m, (unsigned long long)c->lines);
        else
            snprintf(line, sizeof line, "%s %llu", op_what(c->op), m);
        if (mwi_p3l_send(p, K_CMD, line, p->next_cmd, NULL) != 0) return;
        p->run_bytes += sz;
        p->run_next++;
    }
}

/* What goes before a run: LAST for MW_LOOP_POP3_NEXT (src/pop3's
 * mw_pop3_range).  Returns 1 when it was sent. */
static int run_pre(p3l *p, uint64_t start)
{
    if (start == MW_LOOP_POP3_NEXT) {
        p->pre = P3L_PRE_LAST;
        snprintf(p->cur_cmd, sizeof p->cur_cmd, "LAST");
        mwi_p3l_send(p, K_CMD, "LAST", p->next_cmd, NULL);
        return 1;
    }
    return 0;
}

/* msg..last, cut to the count, as mw_pop3_range and check_range make it;
 * start: msg, or what LAST made of MW_LOOP_POP3_NEXT. */
static void run_begin(p3l *p, uint64_t start)
{
    const mw_loop_pop3_cmd *c = cur(p);
    p->run_next = p->run_got = start ? start : 1;
    uint64_t last = c->last == MW_LOOP_POP3_NEXT ? p->run_got : c->last;
    p->run_end = p->have_count && last > p->count ? p->count : last;
    if (p->run_list) p->run_end = p->run_n; /* checked by src/pop3 */
    p->run_bytes = 0;
    memset(&p->run_err, 0, sizeof p->run_err);
    if (p->run_got > p->run_end) { /* an empty run */
        if (deliver(p, MW_LOOP_POP3_END, NULL, 0, 0, 0, NULL)) return;
        p->next_cmd++;
        next_cmd(p);
        return;
    }
    if (c->op == MW_LOOP_POP3_RETR && p->retr_mode == MW_POP3_RETR_LIST) {
        /* pop3_retr.c's retr_run: one LIST for every size */
        p->pre = P3L_PRE_LIST_ALL;
        p->ml_n = 0;
        for (size_t i = 0; i < p->nmsgs; i++)
            free(p->msgs[i].uid);
        p->nmsgs = 0;
        snprintf(p->cur_cmd, sizeof p->cur_cmd, "LIST");
        mwi_p3l_send(p, K_CMD, "LIST", p->next_cmd, NULL);
        return;
    }
    run_send(p);
}

static void run_start_at(p3l *p, uint64_t start)
{
    if (!run_pre(p, start)) run_begin(p, start);
}

/* A message of the run was answered: the next, or the run is over (a DELE
 * run's first -ERR is its result then: src/pop3's dele_run). */
static void run_advance(p3l *p)
{
    if (p->run_list) p->run_bytes -= p->run_list[p->run_got - 1].size;
    p->run_got++;
    if (p->run_got <= p->run_end || p->run_got < p->run_next) {
        run_send(p);
        return;
    }
    if (p->run_err.code && p->held) { /* the first -ERR is the run's result */
        p->cmd_err = p->run_err;
        p->next_cmd++;
        next_cmd(p);
        return;
    }
    if (p->run_err.code) {
        p->job->err = p->run_err;
        mwi_p3l_end(p, p->run_err.code, "%s", p->run_err.message);
        return;
    }
    if (deliver(p, MW_LOOP_POP3_END, NULL, 0, 0, 0, NULL)) return; /* the whole run */
    p->next_cmd++;
    next_cmd(p);
}

/* mwi_pop3_check_msg's rule and words (src/pop3/pop3.c). */
static int check_msg(p3l *p, uint64_t msg)
{
    if (msg == 0) {
        mwi_p3l_end(p, MW_EINVAL, "message numbers start at 1");
        return -1;
    }
    if (p->have_count && msg > p->count) {
        mwi_p3l_end(p, MW_EINVAL, "message %llu does not exist: the mailbox has %llu message%s",
                    (unsigned long long)msg, (unsigned long long)p->count,
                    p->count == 1 ? "" : "s");
        return -1;
    }
    return 0;
}

/* CAPA with MW_LOOP_POP3_CAPA_IF_NONE when the session knows lines: its
 * reply is the kept lines, nothing sent.  Returns 1 when it ran. */
static int capa_kept(p3l *p)
{
    const mw_loop_pop3_cmd *c = cur(p);
    if (c->op != MW_LOOP_POP3_CAPA || c->lines != MW_LOOP_POP3_CAPA_IF_NONE || !p->ncapa_kept)
        return 0;
    if (deliver(p, MW_LOOP_POP3_STATUS, "", 0, 0, 0, NULL)) return 1;
    for (size_t i = 0; i < p->ncapa_kept; i++) {
        const char *l = p->capa_kept[i];
        if (deliver(p, MW_LOOP_POP3_LINE, l, strlen(l), 0, 0, NULL)) return 1;
    }
    if (deliver(p, MW_LOOP_POP3_END, NULL, 0, 0, 0, NULL)) return 1;
    p->next_cmd++;
    next_cmd(p);
    return 1;
}

static void next_cmd(p3l *p)
{
    if (p->job->done) return;
    if (p->next_cmd >= p->ncmds && p->held) {
        mwi_p3l_set_state(p, S_HELD); /* the owner's next command (pop3_held.c) */
        return;
    }
    if (p->sent_ahead && p->sent_ahead == p->next_cmd) { /* out with the one before */
        p->sent_ahead = 0;
        snprintf(p->cur_cmd, sizeof p->cur_cmd, "%s", op_what(cur(p)->op));
        p->ml_n = 0;
        return;
    }
    if (p->next_cmd >= p->ncmds) {
        mwi_p3l_set_state(p, S_QUIT);
        mwi_p3l_send(p, K_QUIT, "QUIT", 0, NULL);
        return;
    }
    if (capa_kept(p)) return;
    const mw_loop_pop3_cmd *c = cur(p);
    char *l = p->cur_cmd;
    size_t cap = sizeof p->cur_cmd;
    unsigned long long m = (unsigned long long)c->msg;
    int numbered = c->op == MW_LOOP_POP3_RETR || c->op == MW_LOOP_POP3_TOP ||
                   c->op == MW_LOOP_POP3_DELE ||
                   ((c->op == MW_LOOP_POP3_LIST || c->op == MW_LOOP_POP3_UIDL) && c->msg);
    if (c->op == MW_LOOP_POP3_TOP && c->lines > 999999999) {
        mwi_p3l_end(p, MW_EINVAL, "TOP line count too large");
        return;
    }
    p->ml_n = 0;
    if (is_run(c)) {
        mwi_p3l_set_state(p, S_COMMANDS);
        p->pre = P3L_PRE_NONE;
        run_start_at(p, c->msg);
        return;
    }
    if (numbered && check_msg(p, c->msg)) return;
    if (c->op == MW_LOOP_POP3_RETR && p->retr_mode == MW_POP3_RETR_LIST) {
        /* src/pop3's size_by_list: LIST n first */
        p->pre = P3L_PRE_LIST_ONE;
        snprintf(l, cap, "LIST %llu", m);
        mwi_p3l_set_state(p, S_COMMANDS);
        mwi_p3l_send(p, K_CMD, l, p->next_cmd, NULL);
        return;
    }
    p->pre = P3L_PRE_NONE;
    if (c->op == MW_LOOP_POP3_TOP)
        snprintf(l, cap, "TOP %llu %llu", m, (unsigned long long)c->lines);
    else if (numbered)
        snprintf(l, cap, "%s %llu", op_what(c->op), m);
    else
        snprintf(l, cap, "%s", op_what(c->op));
    p->ml_n = 0;
    mwi_p3l_set_state(p, S_COMMANDS);
    if (mwi_p3l_send(p, K_CMD, l, p->next_cmd, NULL) != 0) return;
    /* LIST and UIDL in one write (RFC 2449 §6.6): src/pop3's
     * mw_pop3_list_uidl, one round trip */
    if (p->held && p->next_cmd + 1 < p->ncmds && p->capa_pipelining && p->want_pipe &&
        mwi_p3l_send(p, K_CMD, op_what(p->cmds[p->next_cmd + 1].op), p->next_cmd + 1, NULL) == 0)
        p->sent_ahead = p->next_cmd + 1;
}

void mwi_p3l_push(p3l *p, const mw_loop_pop3_cmd *cmds, size_t n, mw_loop_pop3_reply_fn reply,
                  void *ud)
{
    mw_loop_pop3_cmd *a = realloc(p->cmds, n * sizeof *a);
    if (!a) {
        mwi_p3l_end(p, MW_ENOMEM, "out of memory");
        return;
    }
    memcpy(a, cmds, n * sizeof *a);
    p->cmds = a;
    p->ncmds = n;
    p->next_cmd = 0;
    p->sent_ahead = 0;
    p->reply = reply;
    p->reply_ud = ud;
    p->stop_rc = 0;
    mw_error_clear(&p->cmd_err);
    mw_error_clear(&p->job->err);
    next_cmd(p);
}

void mwi_p3l_held_quit(p3l *p)
{
    p->held = 0;
    p->ncmds = p->next_cmd = 0;
    next_cmd(p);
}

void mwi_p3l_cmds_start(p3l *p)
{
    if (p->auth == MW_POP3_AUTH_NONE || p->no_stat) {
        next_cmd(p);
        return;
    }
    mwi_p3l_set_state(p, S_STAT);
    snprintf(p->cur_cmd, sizeof p->cur_cmd, "STAT");
    mwi_p3l_send(p, K_STAT, "STAT", 0, NULL);
}

/* A reply that is not what the command promises: the session is over. */
static void bad_reply(p3l *p, const mw_pop3_status *st, const char *head)
{
    mw_error *e = &p->job->err;
    mwi_err_set_command(e, p->cur_cmd, strlen(p->cur_cmd));
    mwi_err_set_reply(e, st->text, st->text_len);
    mwi_p3l_end(p, MW_EPROTO, "%s: '%.300s'", head, e->reply);
}

static int stat_reply(p3l *p, const mw_pop3_status *st, int callers)
{
    uint64_t c, o;
    if (mwi_pop3_parse_stat(st->text, st->text_len, &c, &o)) {
        bad_reply(p, st, "STAT reply is not 'count octets'");
        return -1;
    }
    p->count = c;
    p->have_count = 1;
    return callers ? deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, c, o, NULL) : 0;
}

/* LIST n / UIDL n: the entry is in the status line. */
static void one_entry(p3l *p, const mw_pop3_status *st, int uidl)
{
    uint64_t m, s = 0;
    const char *u = NULL;
    size_t ul = 0;
    int bad = uidl ? mwi_pop3_parse_uidl(st->text, st->text_len, &m, &u, &ul)
                   : mwi_pop3_parse_listing(st->text, st->text_len, &m, &s);
    if (bad || m != cur(p)->msg) {
        char head[64];
        snprintf(head, sizeof head, "bad %s %llu reply", uidl ? "UIDL" : "LIST",
                 (unsigned long long)cur(p)->msg);
        bad_reply(p, st, head);
        return;
    }
    char uid[71];
    memcpy(uid, u ? u : "", ul);
    uid[ul] = '\0';
    if (!deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, m, s, uidl ? uid : NULL) &&
        !deliver(p, MW_LOOP_POP3_END, NULL, 0, m, s, NULL)) {
        p->next_cmd++;
        next_cmd(p);
    }
}

static void refused(p3l *p, const mw_pop3_status *st, int op)
{
    mw_error *e = &p->job->err;
    char what[48];
    if (op == MW_LOOP_POP3_RETR || op == MW_LOOP_POP3_TOP)
        snprintf(what, sizeof what, "%s %llu", op_what(op), (unsigned long long)cur_num(p));
    else if (op == MW_LOOP_POP3_DELE && is_run(cur(p)))
        snprintf(what, sizeof what, "DELE %llu", (unsigned long long)cur_num(p));
    else
        snprintf(what, sizeof what, "%s", op ? op_what(op) : "QUIT");
    int dflt = op == MW_LOOP_POP3_CAPA || op == MW_LOOP_POP3_LAST ? MW_EUNSUPPORTED : MW_ESERVER;
    mwi_err_set_command(e, p->cur_cmd, strlen(p->cur_cmd));
    int rc = mwi_pop3_status_error(e, st, dflt, what);
    char msg[sizeof e->message];
    if (op == MW_LOOP_POP3_LAST && rc == MW_EUNSUPPORTED)
        snprintf(msg, sizeof msg, "server has no LAST command: -ERR %.250s", e->reply);
    else
        memcpy(msg, e->message, sizeof msg);
    /* A "+ " outside AUTH: the reply stream is not trusted further. */
    if (op && st->kind != MW_POP3_CONT)
        cmd_failed(p, rc, msg);
    else
        mwi_p3l_end(p, rc, "%s", msg);
}

/* The reply to what was sent before the caller's command (p->pre). */
static void pre_reply(p3l *p, const mw_pop3_status *st)
{
    const mw_loop_pop3_cmd *c = cur(p);
    int ok = st->kind == MW_POP3_OK, pre = p->pre;
    uint64_t v = 0, m;
    p->pre = P3L_PRE_NONE;
    if (pre == P3L_PRE_LAST) {
        /* Tcllib: a failed LAST counts as 0 (src/pop3's mw_pop3_range) */
        int got = ok && mwi_pop3_parse_retr_size(st->text, st->text_len, &v);
        run_begin(p, got ? v + 1 : 1);
        return;
    }
    if (pre == P3L_PRE_LIST_ALL) {
        if (ok) {
            p->pre = pre;
            p->ml = K_CMD;
            return;
        }
        p->retr_mode = MW_POP3_RETR_SLOW; /* pop3_retr.c: no sizes, for good */
        run_send(p);
        return;
    }
    /* LIST n before a RETR (src/pop3's size_by_list): refused, no size
     * from now on; refused for a while ([SYS/TEMP], [IN-USE]), the RETR
     * fails with it */
    p->list_size = UINT64_MAX;
    if (!ok) {
        mw_error *e = &p->job->err;
        mwi_err_set_command(e, p->cur_cmd, strlen(p->cur_cmd));
        int rc = mwi_pop3_status_error(e, st, MW_ESERVER, "LIST");
        if (rc != MW_ESERVER) {
            char msg[sizeof e->message];
            memcpy(msg, e->message, sizeof msg);
            cmd_failed(p, rc, msg);
            return;
        }
        mw_error_clear(e);
        p->retr_mode = MW_POP3_RETR_SLOW;
    } else if (mwi_pop3_parse_listing(st->text, st->text_len, &m, &v) || m != c->msg) {
        char head[64];
        snprintf(head, sizeof head, "bad LIST %llu reply", (unsigned long long)c->msg);
        bad_reply(p, st, head);
        return;
    } else {
        p->list_size = v;
    }
    snprintf(p->cur_cmd, sizeof p->cur_cmd, "RETR %llu", (unsigned long long)c->msg);
    mwi_p3l_send(p, K_CMD, p->cur_cmd, p->next_cmd, NULL);
}

/* The size a RETR reply is read against, as src/pop3 learns it
 * (pop3_retr.c, read_message_reply): UINT64_MAX for none. */
static uint64_t retr_declared(p3l *p, const mw_pop3_status *st, uint64_t m)
{
    uint64_t d = UINT64_MAX;
    if (p->retr_mode == MW_POP3_RETR_RETR) {
        if (!mwi_pop3_parse_retr_size(st->text, st->text_len, &d)) {
            d = UINT64_MAX;
            p->retr_mode = MW_POP3_RETR_LIST; /* Tcllib: LIST sizes from now on */
        }
    } else if (p->retr_mode == MW_POP3_RETR_LIST) {
        const p3l_msg *pm = is_run(cur(p)) ? mwi_p3l_find_msg(p, m) : NULL;
        d = !is_run(cur(p)) ? p->list_size : pm ? pm->size : UINT64_MAX;
    }
    return d;
}

/* A -ERR to a message of a run: src/pop3's dele_run and retr_run send
 * no more after the first (unless run_go_on); what is in flight is still
 * read. */
static void run_refused(p3l *p, const mw_pop3_status *st, uint64_t m)
{
    const mw_loop_pop3_cmd *c = cur(p);
    if (!p->run_err.code) {
        char what[48];
        snprintf(what, sizeof what, "%s %llu", op_what(c->op), (unsigned long long)m);
        mwi_err_set_command(&p->run_err, p->cur_cmd, strlen(p->cur_cmd));
        mwi_pop3_status_error(&p->run_err, st, MW_ESERVER, what);
        if (!p->run_go_on && p->run_end >= p->run_next) p->run_end = p->run_next - 1;
        if (p->held) {
            p->cmd_err = p->run_err;
            deliver_l(p, P3L_FAIL, NULL, 0, m, (uint64_t)p->run_err.code, NULL, 0);
        }
    }
    run_advance(p);
}

/* A -ERR to CAPA with MW_LOOP_POP3_CAPA_IF_NONE is its answer (the
 * server has no CAPA), not an error.  Returns 1 when it was that. */
static int capa_none(p3l *p, const mw_pop3_status *st)
{
    const mw_loop_pop3_cmd *c = cur(p);
    if (st->kind != MW_POP3_ERR || c->op != MW_LOOP_POP3_CAPA ||
        c->lines != MW_LOOP_POP3_CAPA_IF_NONE)
        return 0;
    if (deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, 0, 1, NULL) ||
        deliver(p, MW_LOOP_POP3_END, NULL, 0, 0, 1, NULL))
        return 1;
    p->next_cmd++;
    next_cmd(p);
    return 1;
}

static void cmd_reply(p3l *p, const mw_pop3_status *st)
{
    if (p->pre) {
        pre_reply(p, st);
        return;
    }
    const mw_loop_pop3_cmd *c = cur(p);
    uint64_t m = cur_num(p);
    if (is_run(c))
        snprintf(p->cur_cmd, sizeof p->cur_cmd, "%s %llu", op_what(c->op), (unsigned long long)m);
    if (c->op == MW_LOOP_POP3_TOP && is_run(c))
        snprintf(p->cur_cmd, sizeof p->cur_cmd, "TOP %llu %llu", (unsigned long long)m,
                 (unsigned long long)c->lines);
    if (st->kind == MW_POP3_ERR && is_run(c) && (c->op == MW_LOOP_POP3_DELE || p->held)) {
        run_refused(p, st, m);
        return;
    }
    if (capa_none(p, st)) return;
    if (st->kind != MW_POP3_OK) return refused(p, st, c->op);
    switch (c->op) {
    case MW_LOOP_POP3_STAT:
        if (stat_reply(p, st, 1) == 0 && !deliver(p, MW_LOOP_POP3_END, NULL, 0, 0, 0, NULL)) break;
        return;
    case MW_LOOP_POP3_LIST:
    case MW_LOOP_POP3_UIDL:
        if (c->msg) return one_entry(p, st, c->op == MW_LOOP_POP3_UIDL);
        if (!deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, 0, 0, NULL)) p->ml = K_CMD;
        return;
    case MW_LOOP_POP3_CAPA:
        if (c->lines == MW_LOOP_POP3_CAPA_IF_NONE) p->capa_known = 1; /* its lines kept */
        if (!deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, 0, 0, NULL)) p->ml = K_CMD;
        return;
    case MW_LOOP_POP3_RETR:
    case MW_LOOP_POP3_TOP:
        if (deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, m, 0, NULL)) return;
        snprintf(p->body_what, sizeof p->body_what, "%s %llu", op_what(c->op),
                 (unsigned long long)m);
        p->declared = c->op == MW_LOOP_POP3_RETR ? retr_declared(p, st, m) : UINT64_MAX;
        /* the caller's LIST size bounds it too (mw_pop3_retr_msgs) */
        p->announced = p->declared;
        if (p->run_list && is_run(c) && p->run_list[p->run_got - 1].size < p->announced)
            p->announced = p->run_list[p->run_got - 1].size;
        mwi_pop3_body_init(&p->body);
        p->in_body = 1;
        return;
    case MW_LOOP_POP3_LAST: {
        uint64_t v;
        if (!mwi_pop3_parse_retr_size(st->text, st->text_len, &v)) {
            if (!p->held) {
                bad_reply(p, st, "LAST reply is not a number");
                return;
            }
            /* src/pop3: the session stays usable */
            mw_error *e = &p->job->err;
            char msg[sizeof e->message];
            mwi_err_set_command(e, p->cur_cmd, strlen(p->cur_cmd));
            mwi_err_set_reply(e, st->text, st->text_len);
            snprintf(msg, sizeof msg, "LAST reply is not a number: '%.285s'", e->reply);
            cmd_failed(p, MW_EPROTO, msg);
            return;
        }
        if (deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, 0, v, NULL) ||
            deliver(p, MW_LOOP_POP3_END, NULL, 0, 0, v, NULL))
            return;
        break;
    }
    default: /* DELE, NOOP, RSET */
        if (c->op == MW_LOOP_POP3_DELE) p->job->result.deleted++;
        if (deliver(p, MW_LOOP_POP3_STATUS, st->text, st->text_len, m, 0, NULL) ||
            deliver(p, MW_LOOP_POP3_END, NULL, 0, m, 0, NULL))
            return;
        if (is_run(c)) {
            run_advance(p);
            return;
        }
        break;
    }
    p->next_cmd++;
    next_cmd(p);
}

void mwi_p3l_cmds_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st)
{
    if (c->kind == K_STAT) {
        if (st->kind != MW_POP3_OK) return mwi_p3l_refuse(p, c, st, MW_ESERVER);
        if (stat_reply(p, st, 0) == 0) next_cmd(p);
        return;
    }
    if (c->kind == K_QUIT) {
        if (st->kind != MW_POP3_OK) return refused(p, st, 0);
        p->job->result.quit_ok = 1;
        mwi_p3l_end(p, 0, "%s", "done");
        return;
    }
    if (c->kind == K_CMD) return cmd_reply(p, st);
    mwi_p3l_end(p, MW_EPROTO, "a reply to %s the session did not expect",
                mwi_p3l_kind_name[c->kind]);
}

/* A LIST entry kept for a RETR run's sizes (retr_mode list). */
static void keep_size(p3l *p, uint64_t m, uint64_t s)
{
    if (p->nmsgs == p->msgs_cap) {
        size_t nc = p->msgs_cap ? p->msgs_cap * 2 : 64;
        p3l_msg *a = realloc(p->msgs, nc * sizeof *a);
        if (!a) {
            mwi_p3l_end(p, MW_ENOMEM, "out of memory");
            return;
        }
        p->msgs = a;
        p->msgs_cap = nc;
    }
    /* mwi_p3l_find_msg wants them ascending: a LIST out of order is
     * taken as giving no size past the disorder */
    if (p->nmsgs && p->msgs[p->nmsgs - 1].num >= m) return;
    memset(&p->msgs[p->nmsgs], 0, sizeof p->msgs[p->nmsgs]);
    p->msgs[p->nmsgs].num = m;
    p->msgs[p->nmsgs++].size = s;
}

/* One line of a LIST, UIDL or CAPA reply, checked as src/pop3's
 * list_line checks it. */
void mwi_p3l_cmds_line(p3l *p, const char *l, size_t len)
{
    const mw_loop_pop3_cmd *c = cur(p);
    if (c->op == MW_LOOP_POP3_CAPA) {
        /* src/pop3's bound (pop3.c, capa_line) */
        if (++p->ml_n > 1000) {
            mwi_p3l_end(p, MW_ETOOBIG, "CAPA reply of over %d lines; stopped reading it", 1000);
            return;
        }
        if (c->lines == MW_LOOP_POP3_CAPA_IF_NONE) mwi_p3l_capa_keep(p, l, len); /* loop.h */
        deliver(p, MW_LOOP_POP3_LINE, l, len, 0, 0, NULL);
        return;
    }
    int uidl = c->op == MW_LOOP_POP3_UIDL;
    const char *what = uidl ? "UIDL" : "LIST";
    uint64_t m, s = 0;
    const char *u = NULL;
    size_t ul = 0;
    int bad =
        uidl ? mwi_pop3_parse_uidl(l, len, &m, &u, &ul) : mwi_pop3_parse_listing(l, len, &m, &s);
    /* RFC 1939 §7 broken in the unique-id only: that message's entry has
     * uid "" (src/pop3's mw_pop3_list_uidl; fetch leaves it) */
    if (bad && uidl && p->lenient_uidl && !mwi_pop3_parse_uidl_msg(l, len, &m)) {
        bad = 0;
        u = "";
        ul = 0;
    }
    mw_error *e = &p->job->err;
    if (bad || (p->have_count && m > p->count) || (p->have_count && p->ml_n >= p->count)) {
        mwi_err_set_command(e, what, 4);
        mwi_err_set_reply(e, l, len);
        if (bad || m > p->count)
            mwi_p3l_end(p, MW_EPROTO,
                        bad ? "bad %s line: '%s'" : "%s names a message over the count: '%s'", what,
                        e->reply);
        else
            mwi_p3l_end(p, MW_EPROTO,
                        "%s lists more entries than the %llu messages: '%s'; stopped reading it",
                        what, (unsigned long long)p->count, e->reply);
        return;
    }
    if (p->ml_n >= P3L_MAX_MSGS) {
        mwi_p3l_end(p, MW_ETOOBIG, "%s reply of over %u entries%s; stopped reading it", what,
                    P3L_MAX_MSGS, p->have_count ? "" : " with no message count (STAT) to bound it");
        return;
    }
    p->ml_n++;
    if (p->pre == P3L_PRE_LIST_ALL) {
        keep_size(p, m, s);
        return;
    }
    char uid[71];
    memcpy(uid, u ? u : "", ul);
    uid[ul] = '\0';
    deliver(p, MW_LOOP_POP3_LINE, l, len, m, s, uidl ? uid : NULL);
}

void mwi_p3l_cmds_ml_end(p3l *p)
{
    if (p->pre == P3L_PRE_LIST_ALL) { /* the sizes for a RETR run */
        p->pre = P3L_PRE_NONE;
        run_send(p);
        return;
    }
    if (deliver(p, MW_LOOP_POP3_END, NULL, 0, 0, p->ml_n, NULL)) return;
    p->next_cmd++;
    next_cmd(p);
}

/* The message's octets from p->c.in at *pos to the reply callback; a RETR
 * is bounded as src/pop3 bounds it (mwi_pop3_message_bound's rule). */
void mwi_p3l_cmds_body(p3l *p, size_t *pos)
{
    size_t used = 0, made = 0;
    int fin = mwi_pop3_body_decode(&p->body, p->c.in + *pos, p->c.in_len - *pos, &used, &made);
    uint64_t d = p->declared, a = p->announced;
    /* src/pop3's bound (the size announced and its slack), checked
     * before the piece is given on */
    uint64_t bound = a != UINT64_MAX ? mwi_p3l_bound(a, 0) : UINT64_MAX;
    if (p->body.produced > bound) {
        p->body.produced -= made;
        mwi_err_set_command(&p->job->err, p->body_what, strlen(p->body_what));
        mwi_p3l_end(p, MW_ETOOBIG,
                    "%s: the server sent over %llu octets for a message announced as %llu "
                    "octets (RFC 1939 §5); stopped reading it, the message is incomplete",
                    p->body_what, (unsigned long long)bound, (unsigned long long)a);
        return;
    }
    if (made && deliver(p, MW_LOOP_POP3_DATA, p->c.in + *pos, made, cur_num(p), 0, NULL)) return;
    *pos += used;
    if (!fin) return;
    p->in_body = 0;
    if (d != UINT64_MAX && d != p->body.produced)
        mwi_lconn_info(&p->c, "%s: the server announced %llu octets but sent %llu", p->body_what,
                       (unsigned long long)d, (unsigned long long)p->body.produced);
    if (deliver_l(p, MW_LOOP_POP3_END, NULL, 0, cur_num(p), p->body.produced, NULL, d)) return;
    if (is_run(cur(p))) {
        run_advance(p);
        return;
    }
    p->next_cmd++;
    next_cmd(p);
}
