/* What `mailwire pop3` (cmd_pop3.c) shares with its run on the event loop
 * (pop3_loop.c, MAILWIRE_ENGINE=loop): the state, the output of each
 * command, and the error report, so both engines print the same. */
#ifndef MW_CLI_POP3_CLI_H
#define MW_CLI_POP3_CLI_H

#include "connopts.h"

#include "mailwire/pop3.h"

#include <stdint.h>
#include <stdio.h>

/* run_command's answer for bad arguments (library codes are negative). */
#define USAGE_ERR 1000

typedef struct cli_state {
    mw_cli_conn conn;
    const char *outdir;
    int json;
    int json_first;
    FILE *out;
    /* retr RANGE -o DIR */
    int fd;
    uint64_t fd_msg;
    char path[4096];
    int write_failed;
} cli_state;

/* Collects a message for --json output. */
typedef struct grow {
    char *data;
    size_t len, cap;
} grow;

int mw_cli_pop3_report_err(const mw_error *e, int rc);
int mw_cli_pop3_parse_num(const char *s, uint64_t *v);
int mw_cli_pop3_stdout_sink(const char *data, size_t len, void *ud);
int mw_cli_pop3_grow_sink(const char *data, size_t len, void *ud);
/* RANGE: N, A-B, all, next as mw_pop3_range's start/end words. */
int mw_cli_pop3_range_words(const char *r, char *a, char *b, size_t n, int *has_end);
/* retr RANGE -o DIR: a piece of message msg into DIR/msg.eml (info NULL),
 * or its end (info set: the file closed, its path or JSON record printed). */
int mw_cli_pop3_file_msg(uint64_t msg, const char *data, size_t len, const mw_pop3_retr_info *info,
                         void *ud);

/* The output of each command, as `mailwire pop3` prints it. */
void mw_cli_pop3_print_stat(cli_state *s, uint64_t count, uint64_t octets);
void mw_cli_pop3_print_entry(cli_state *s, int uidl, uint64_t msg, uint64_t size, const char *uid);
void mw_cli_pop3_print_list(cli_state *s, const mw_pop3_listing *l, size_t n);
void mw_cli_pop3_print_uidl(cli_state *s, const mw_pop3_uid *u, size_t n);
void mw_cli_pop3_print_message(cli_state *s, int top, uint64_t msg, const grow *g,
                               const mw_pop3_retr_info *info);
void mw_cli_pop3_print_capa(cli_state *s, const char *const *lines, size_t n);

/* What `mailwire pop3 serverinfo` shows, from mw_pop3 (cmd_pop3.c) or
 * from a loop job (pop3_loop.c, mw_loop_pop3_greeting and the others). */
typedef struct mw_cli_server_facts {
    const char *host;
    unsigned port;
    const char *greeting;
    mw_tls_info ti;
    int tls;                  /* ti is set */
    int capa;                 /* 0: the server refused CAPA */
    const char *const *lines; /* CAPA's lines */
    size_t nc;
    /* set by mw_cli_pop3_print_server */
    const char *how;  /* how TLS was started */
    const char *sasl; /* the SASL capability's mechanisms, NULL without it */
    int user, apop;
} mw_cli_server_facts;
/* Prints them, text or JSON (s->json). */
void mw_cli_pop3_print_server(cli_state *s, mw_cli_server_facts *f);

/* MAILWIRE_ENGINE=loop: the command rest[0..nrest) on the event loop with
 * the options o; returns the exit status. */
int mw_cli_pop3_loop(cli_state *s, const mw_pop3_opts *o, int nrest, char **rest);
/* 1 when the command's arguments are well formed (pop3_loop.c's parse,
 * run before connecting under either engine: a usage error costs no
 * login), else 0. */
int mw_cli_pop3_args_ok(cli_state *s, int nrest, char **rest);

#endif
