/* `mailwire pop3` on the event loop (MAILWIRE_ENGINE=loop, engine.h): the
 * command becomes a POP3 command sequence (mw_loop_add_pop3_cmds) on a
 * loop of its own, and prints what cmd_pop3.c prints, with the same
 * words and exit status.  What the loop cannot run yet is an error naming
 * it, never a quiet fallback to the blocking API. */
#include "commands.h"
#include "engine.h"
#include "pop3_cli.h"

#include "mailwire/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct lrun {
    cli_state *s;
    mw_loop_pop3_cmd cmd;
    int name; /* 'S' stat, 'L' list, 'U' uidl, 'R' retr, 'T' top, 'D' dele, 'A' last, 'C' capa, 'N'
                 noop, 'I' serverinfo */
    int finished; /* the command's reply was whole (what fails after is QUIT) */
    int rc;
    mw_error err;
    grow g;
    mw_pop3_listing *lists;
    mw_pop3_uid *uids;
    char **capa;
    size_t n, cap;
} lrun;

static int not_on_loop(const char *what)
{
    fprintf(stderr, "mailwire pop3: not on the loop engine yet: %s\n", what);
    mw_error e;
    memset(&e, 0, sizeof e);
    e.code = MW_EUNSUPPORTED;
    /* what may be an mw_error's message: the prefix leaves room for 280 */
    snprintf(e.message, sizeof e.message, "not on the loop engine yet: %.280s", what);
    mw_cli_json_error(mw_cli_exit_code(MW_EUNSUPPORTED), MW_EUNSUPPORTED, &e, NULL);
    return mw_cli_exit_code(MW_EUNSUPPORTED);
}

/* retr RANGE -o DIR, dele RANGE: a run (mw_loop_pop3_cmd.last) from the
 * words mw_pop3_range takes; a single number N is the run N..N, refused
 * when over the count as mw_pop3_retr / mw_pop3_dele refuse it. */
static int parse_range(lrun *r, int argc, char **argv)
{
    char a[32], b[32];
    int has_end;
    uint64_t x = 0, y = 0;
    if (argc != 2 || mw_cli_pop3_range_words(argv[1], a, b, sizeof a, &has_end)) return USAGE_ERR;
    int dele = argv[0][0] == 'd';
    if (!dele && !r->s->outdir) {
        fprintf(stderr, "mailwire pop3: retr of a range needs -o DIR\n");
        return USAGE_ERR;
    }
    if (!strcmp(a, "next")) /* LAST first, on the job (loop.h) */
        x = MW_LOOP_POP3_NEXT;
    else if (!strcmp(a, "start"))
        x = 1;
    else if (mw_cli_pop3_parse_num(a, &x))
        return USAGE_ERR;
    if (!has_end)
        y = x;
    else if (!strcmp(b, "end"))
        y = UINT64_MAX;
    else if (mw_cli_pop3_parse_num(b, &y))
        return USAGE_ERR;
    r->cmd.op = dele ? MW_LOOP_POP3_DELE : MW_LOOP_POP3_RETR;
    r->cmd.msg = x;
    r->cmd.last = y;
    r->name = dele ? 'd' : 'r';
    return 0;
}

/* The command as the blocking run_command reads it; USAGE_ERR, 1 for a
 * form the loop cannot run, 0. */
static int parse(lrun *r, int argc, char **argv)
{
    const char *c = argv[0];
    uint64_t n = 0, m = 0;
    mw_loop_pop3_cmd *k = &r->cmd;
    int one = argc == 1;
    if (!strcmp(c, "stat") || !strcmp(c, "last") || !strcmp(c, "capa") || !strcmp(c, "noop")) {
        if (!one) return USAGE_ERR;
        k->op = c[0] == 's'   ? MW_LOOP_POP3_STAT
                : c[0] == 'l' ? MW_LOOP_POP3_LAST
                : c[0] == 'c' ? MW_LOOP_POP3_CAPA
                              : MW_LOOP_POP3_NOOP;
    } else if (!strcmp(c, "list") || !strcmp(c, "uidl")) {
        if (argc > 2 || (argc == 2 && (mw_cli_pop3_parse_num(argv[1], &n) || n == 0)))
            return USAGE_ERR;
        k->op = c[0] == 'u' ? MW_LOOP_POP3_UIDL : MW_LOOP_POP3_LIST;
        k->msg = n;
    } else if (!strcmp(c, "top") || (!strcmp(c, "retr") && argc == 2 && !r->s->outdir)) {
        int top = c[0] == 't';
        if ((top && argc != 3) || mw_cli_pop3_parse_num(argv[1], &n) || n == 0 ||
            (top && mw_cli_pop3_parse_num(argv[2], &m)))
            return mw_cli_pop3_parse_num(argv[1], &n) == 0 || top ? USAGE_ERR : 1;
        k->op = top ? MW_LOOP_POP3_TOP : MW_LOOP_POP3_RETR;
        k->msg = n;
        k->lines = m;
    } else if (!strcmp(c, "retr") || !strcmp(c, "dele")) {
        return parse_range(r, argc, argv);
    } else if (!strcmp(c, "serverinfo")) {
        /* CAPA again only when the open learned no line (cmd_pop3.c) */
        if (!one) return USAGE_ERR;
        k->op = MW_LOOP_POP3_CAPA;
        k->lines = MW_LOOP_POP3_CAPA_IF_NONE;
        r->name = 'I';
        return 0;
    } else {
        return 1;
    }
    r->name = k->op == MW_LOOP_POP3_LAST ? 'A' : c[0] == 'l' ? 'L' : c[0] - 32;
    return 0;
}

static int keep_line(lrun *r, const mw_loop_pop3_reply *p)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        void *a = r->name == 'L'   ? realloc(r->lists, nc * sizeof *r->lists)
                  : r->name == 'U' ? realloc(r->uids, nc * sizeof *r->uids)
                                   : realloc(r->capa, nc * sizeof *r->capa);
        if (!a) return MW_ENOMEM;
        if (r->name == 'L')
            r->lists = a;
        else if (r->name == 'U')
            r->uids = a;
        else
            r->capa = a;
        r->cap = nc;
    }
    if (r->name == 'L') {
        r->lists[r->n].msg = p->msg;
        r->lists[r->n].size = p->value;
    } else if (r->name == 'U') {
        r->uids[r->n].msg = p->msg;
        snprintf(r->uids[r->n].uid, sizeof r->uids[r->n].uid, "%s", p->uid);
    } else if (!(r->capa[r->n] = strndup(p->data, p->len))) {
        return MW_ENOMEM;
    }
    r->n++;
    return 0;
}

/* At the end of the command's reply: cmd_pop3.c's output for it. */
static void print(lrun *r, const mw_loop_pop3_reply *p)
{
    cli_state *s = r->s;
    if (r->name == 'S') {
        mw_cli_pop3_print_stat(s, r->cmd.msg, r->cmd.lines);
    } else if ((r->name == 'L' || r->name == 'U') && r->cmd.msg) {
        mw_cli_pop3_print_entry(s, r->name == 'U', r->cmd.msg, r->cmd.lines, r->g.data);
    } else if (r->name == 'L') {
        mw_cli_pop3_print_list(s, r->lists, r->n);
    } else if (r->name == 'U') {
        mw_cli_pop3_print_uidl(s, r->uids, r->n);
    } else if (r->name == 'R' || r->name == 'T') {
        mw_pop3_retr_info info;
        memset(&info, 0, sizeof info);
        info.msg = r->cmd.msg;
        info.octets = p->value;
        info.declared = p->lines;
        info.size_known = p->lines != UINT64_MAX;
        info.size_mismatch = r->name == 'R' && info.size_known && p->lines != p->value;
        mw_cli_pop3_print_message(s, r->name == 'T', r->cmd.msg, s->json ? &r->g : NULL, &info);
    } else if (r->name == 'A') {
        fprintf(s->out, s->json ? "{\"last\":%llu}\n" : "%llu\n", (unsigned long long)p->value);
    } else if (r->name == 'C') {
        mw_cli_pop3_print_capa(s, (const char *const *)r->capa, r->n);
    } else if (r->name == 'N' && s->json) {
        fputs("{\"ok\":true}\n", s->out);
    } else if (r->name == 'D' && s->json) {
        fprintf(s->out, "{\"deleted\":[%llu]}\n", (unsigned long long)r->cmd.msg);
    }
}

/* retr RANGE -o DIR and dele RANGE, as cmd_pop3.c's run_command prints
 * them: a file per message, the numbers deleted. */
static int on_run(lrun *r, const mw_loop_pop3_reply *p)
{
    cli_state *s = r->s;
    if (p->kind == MW_LOOP_POP3_END && !p->msg) r->finished = 1; /* the run's end */
    if (r->name == 'd') {
        if (p->kind == MW_LOOP_POP3_END && p->msg) {
            if (r->n == r->cap) {
                size_t nc = r->cap ? r->cap * 2 : 64;
                mw_pop3_listing *a = realloc(r->lists, nc * sizeof *a);
                if (!a) return MW_ENOMEM;
                r->lists = a;
                r->cap = nc;
            }
            r->lists[r->n++].msg = p->msg;
        }
        return 0;
    }
    if (p->kind == MW_LOOP_POP3_DATA) return mw_cli_pop3_file_msg(p->msg, p->data, p->len, NULL, s);
    if (p->kind != MW_LOOP_POP3_END || !p->msg) return 0;
    mw_pop3_retr_info info;
    memset(&info, 0, sizeof info);
    info.msg = p->msg;
    info.octets = p->value;
    info.declared = p->lines;
    info.size_known = p->lines != UINT64_MAX;
    info.size_mismatch = info.size_known && p->lines != p->value;
    info.complete = 1;
    /* An empty message wrote no piece: its file is made now. */
    if (s->fd < 0 || s->fd_msg != p->msg) {
        int rc = mw_cli_pop3_file_msg(p->msg, "", 0, NULL, s);
        if (rc) return rc;
    }
    return mw_cli_pop3_file_msg(p->msg, NULL, 0, &info, s);
}

/* serverinfo at the end of its CAPA: the job's facts, while it lives. */
static int print_server(lrun *r, mw_loop_job *job)
{
    cli_state *s = r->s;
    mw_cli_server_facts f;
    memset(&f, 0, sizeof f);
    f.host = s->conn.host;
    f.port = s->conn.port;
    f.greeting = mw_loop_pop3_greeting(job);
    if (!f.greeting) f.greeting = "";
    f.tls = mw_loop_pop3_tls_info(job, &f.ti) == 0;
    f.capa = mw_loop_pop3_capa_known(job);
    /* the lines as the job keeps them (printable, none empty), as
     * mw_pop3_capa_line gives them */
    f.nc = mw_loop_pop3_capa_count(job);
    const char **lines = calloc(f.nc ? f.nc : 1, sizeof *lines);
    if (!lines) return MW_ENOMEM;
    for (size_t i = 0; i < f.nc; i++)
        lines[i] = mw_loop_pop3_capa_line(job, i);
    f.lines = lines;
    mw_cli_pop3_print_server(s, &f);
    free(lines);
    return 0;
}

static int on_reply(mw_loop_job *job, const mw_loop_pop3_reply *p, void *ud)
{
    lrun *r = ud;
    cli_state *s = r->s;
    if (r->name == 'd' || r->name == 'r') return on_run(r, p);
    if (r->name == 'I' && p->kind == MW_LOOP_POP3_LINE) return 0; /* kept by the job */
    if (r->name == 'I' && p->kind == MW_LOOP_POP3_END) {
        int rc = print_server(r, job);
        if (rc) return rc;
    }
    if (p->kind == MW_LOOP_POP3_DATA) {
        return s->json ? mw_cli_pop3_grow_sink(p->data, p->len, &r->g)
                       : mw_cli_pop3_stdout_sink(p->data, p->len, s);
    }
    if (p->kind == MW_LOOP_POP3_LINE) return keep_line(r, p);
    if (p->kind == MW_LOOP_POP3_STATUS && (r->name == 'S' || p->uid || r->cmd.msg)) {
        if (r->name == 'S' || r->name == 'L') r->cmd.lines = p->value; /* count / size */
        if (r->name == 'S') r->cmd.msg = p->msg;
        if (p->uid && !(r->g.data = strdup(p->uid))) return MW_ENOMEM;
    }
    if (p->kind == MW_LOOP_POP3_END) {
        print(r, p);
        r->finished = 1;
        if (fflush(s->out) != 0) {
            s->write_failed = 1;
            return MW_EIO;
        }
    }
    return 0;
}

static void on_done(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    (void)job;
    lrun *r = ud;
    r->rc = res->code;
    r->err = *res->err;
}

static void loop_opts(mw_loop_pop3_opts *lo, const mw_pop3_opts *o, const char *host)
{
    lo->host = host;
    lo->port = o->port;
    lo->tls = o->tls;
    lo->tls_opts = o->tls_opts;
    lo->user = o->user;
    lo->password = o->password;
    lo->allow_plaintext = o->allow_plaintext;
    lo->keep = 1;
    /* mw_pop3_open's window: 32 commands, 1 without pipelining. */
    lo->window = !o->pipelining ? 1 : o->window ? o->window : 32;
    lo->auth = o->auth;
    lo->sasl_mechs = o->sasl_mechs;
    lo->authzid = o->authzid;
    lo->sasl_ir = o->sasl_ir;
    lo->trace_secrets = o->trace_secrets;
    lo->token = o->token;
    lo->msex = o->msex;
    lo->retr_mode = o->retr_mode;
    lo->trace = o->trace;
    lo->trace_userdata = o->trace_userdata;
    if (o->net) {
        if (o->net->connect_timeout_ms > 0) lo->connect_timeout_ms = o->net->connect_timeout_ms;
        if (o->net->io_timeout_ms > 0) lo->io_timeout_ms = o->net->io_timeout_ms;
        lo->max_time_ms = o->net->max_time_ms;
        lo->proxy = o->net->proxy;
    }
}

/* Options the loop does not take yet: named, never dropped. */
static const char *unsupported(const mw_pop3_opts *o)
{
    if (o->stream) return "a tunnel or command stream";
    if (o->command_timeout_ms) return "a command timeout";
    if (o->version >= 2 && o->token_fn) return "a token provider";
    return NULL;
}

static void run_free(lrun *r)
{
    free(r->g.data);
    free(r->lists);
    free(r->uids);
    for (size_t i = 0; r->capa && i < r->n; i++)
        free(r->capa[i]);
    free(r->capa);
}

/* After a run: no partial file left behind, the JSON closed. */
static void run_end(lrun *r)
{
    cli_state *s = r->s;
    if (r->name == 'r') {
        if (s->fd >= 0) {
            close(s->fd);
            s->fd = -1;
            unlink(s->path);
        }
        if (s->json) fputs("]\n", s->out);
    } else if (r->name == 'd' && s->json) {
        fputs("{\"deleted\":[", s->out);
        for (size_t i = 0; !r->rc && i < r->n; i++)
            fprintf(s->out, "%s%llu", i ? "," : "", (unsigned long long)r->lists[i].msg);
        fputs("]}\n", s->out);
    }
}

static int outcome(lrun *r)
{
    cli_state *s = r->s;
    if (!r->rc) return EX_OK_;
    if (s->write_failed) return EX_IOERR_;
    if (r->finished && r->name != 'D' && r->name != 'd') {
        /* The command's answer came: only QUIT failed (cmd_pop3.c). */
        fprintf(stderr, "mailwire pop3: warning: QUIT not confirmed: %s\n", r->err.message);
        return EX_OK_;
    }
    return mw_cli_pop3_report_err(&r->err, r->rc);
}

int mw_cli_pop3_args_ok(cli_state *s, int nrest, char **rest)
{
    lrun r;
    memset(&r, 0, sizeof r);
    r.s = s;
    return parse(&r, nrest, rest) != USAGE_ERR;
}

int mw_cli_pop3_loop(cli_state *s, const mw_pop3_opts *o, int nrest, char **rest)
{
    lrun r;
    memset(&r, 0, sizeof r);
    r.s = s;
    int pr = parse(&r, nrest, rest);
    if (pr == USAGE_ERR) {
        fprintf(stderr, "mailwire pop3: bad arguments for '%s'\n", rest[0]);
        return EX_USAGE_;
    }
    if (pr) return not_on_loop(rest[0]);
    const char *why = unsupported(o);
    if (why) return not_on_loop(why);
    mw_loop *loop = NULL;
    mw_loop_pop3_opts lo = MW_LOOP_POP3_OPTS_INIT;
    loop_opts(&lo, o, s->conn.host);
    mw_error e;
    memset(&e, 0, sizeof e);
    int rc = mw_loop_new(&loop, NULL, &e);
    mw_loop_job *job = NULL;
    if (!rc) rc = mw_loop_add_pop3_cmds(loop, &job, &lo, &r.cmd, 1, on_reply, &r, on_done, &r, &e);
    if (!rc && o->net) /* the rate floor, the default one too, as the blocking stream's */
        mw_loop_set_speed_limit(loop, job, o->net->speed_limit, o->net->speed_time_ms);
    if (rc == MW_EUNSUPPORTED) {
        mw_loop_free(loop);
        return not_on_loop(e.message);
    }
    if (!rc) mw_cli_engine_note("pop3");
    if (rc) {
        mw_loop_free(loop);
        return mw_cli_pop3_report_err(&e, rc);
    }
    if (s->json && r.name == 'r') fputc('[', s->out);
    s->json_first = 1;
    while (mw_loop_running(loop) && (rc = mw_loop_run(loop, MW_NO_DEADLINE, &e)) == 0)
        ;
    mw_loop_free(loop);
    run_end(&r);
    int ex = rc ? mw_cli_pop3_report_err(&e, rc) : outcome(&r);
    run_free(&r);
    return ex;
}
