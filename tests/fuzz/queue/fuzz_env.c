/* Fuzzes the queue's envelope file parser (src/queue/queue.c): any bytes
 * give an entry or a clean refusal; an entry written back and parsed again
 * is the same entry (what a run saves is what the next run reads). */
#include "mailwire/queue.h"
#include "queue/queue_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mw_queue_entry e, f;
    if (mwi_queue_env_parse(&e, (const char *)data, size) != 0) return 0;
    size_t len = 0;
    char *t = mwi_queue_env_text(&e, &len);
    if (!t) abort();
    if (mwi_queue_env_parse(&f, t, len) != 0) abort();
    if (!same_str(e.sender, f.sender) || !same_str(e.account, f.account) ||
        !same_str(e.dsn_notify, f.dsn_notify) || !same_str(e.dsn_ret, f.dsn_ret) ||
        !same_str(e.dsn_envid, f.dsn_envid) || e.body != f.body || e.raw != f.raw ||
        e.created != f.created || e.next_attempt != f.next_attempt || e.attempts != f.attempts ||
        e.nrcpt != f.nrcpt)
        abort();
    for (size_t i = 0; i < e.nrcpt; i++) {
        const mw_queue_rcpt *a = &e.rcpt[i], *b = &f.rcpt[i];
        if (strcmp(a->address, b->address) || a->state != b->state || a->code != b->code ||
            strcmp(a->enhanced, b->enhanced) || !same_str(a->text, b->text))
            abort();
    }
    free(t);
    mwi_queue_entry_clear(&e);
    mwi_queue_entry_clear(&f);
    return 0;
}
