/* OAuth login with the device authorization grant (RFC 8628). */
#include "mailwire/config.h"
#include "mailwire/oauth.h"
#include "oauth/client.h"
#include "oauth/oauth_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Polls the token endpoint with the device code (form) every interval
 * seconds until approved, refused, expired (life) or stopped by `show`;
 * an approval is saved (RFC 8628 section 3.4, 3.5). */
static int poll_token(mw_oauth *oa, const char *form, long long life, long long interval,
                      mw_oauth_device_fn show, void *userdata, mw_error *err)
{
    long status;
    int rc;
    long long deadline = mwi_oauth_now_s() + life;
    unsigned polls = 0;
    for (;;) {
        if (mwi_oauth_now_s() + interval > deadline + 1) {
            rc = mwi_err_set(err, MW_ETIMEOUT,
                             "device login: the code expired (%lld s) before it was approved; "
                             "run `mailwire oauth login` again",
                             life);
            break;
        }
        sleep_ms((long)interval * 1000);
        polls++;
        mw_oauth_resp r;
        long long t0 = mwi_oauth_now_s();
        rc = mwi_oauth_request(oa, oa->o.token_url, "grant_type=device_code", form,
                               MW_OAUTH_RESP_TOKEN, &status, &r, err);
        if (rc == 0 && r.error && !strcmp(r.error, "authorization_pending")) {
            mwi_oauth_resp_clear(&r);
        } else if (rc == 0 && r.error && !strcmp(r.error, "slow_down")) {
            interval += 5; /* RFC 8628 section 3.5 */
            mwi_oauth_trace(oa, MW_TRACE_INFO, "oauth: slow_down: polling every %lld s now",
                            interval);
            mwi_oauth_resp_clear(&r);
        } else if (rc == 0 && r.error) {
            rc = mwi_oauth_error_for(&r, "token", err);
            mwi_oauth_resp_clear(&r);
            break;
        } else if (rc == 0) {
            rc = mwi_oauth_save_login(oa, &r, t0, err);
            mwi_oauth_resp_clear(&r);
            break;
        } else {
            mwi_oauth_resp_clear(&r);
            break;
        }
        int st = show ? show(NULL, polls, userdata) : 0;
        if (st) {
            mwi_err_set(err, st < 0 ? st : MW_ECANCELED,
                        "device login stopped by the callback (%d)", st);
            rc = st;
            break;
        }
    }
    return rc;
}

int mw_oauth_login_device(mw_oauth *oa, mw_oauth_device_fn show, void *userdata, mw_error *err)
{
    if (!oa->o.device_url)
        return mwi_err_set(err, MW_EINVAL,
                           "OAuth: no device authorization endpoint (oauth_device_url)");
    char *form = NULL;
    int rc = mwi_oauth_add_client(oa, &form);
    if (!rc && oa->o.scope) rc = mwi_oauth_form_add(&form, "scope", oa->o.scope);
    if (rc) {
        free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long status;
    mw_oauth_resp d;
    rc = mwi_oauth_request(oa, oa->o.device_url, "device authorization", form, MW_OAUTH_RESP_DEVICE,
                           &status, &d, err);
    free(form);
    form = NULL;
    if (rc == 0 && d.error) rc = mwi_oauth_error_for(&d, "device authorization", err);
    if (rc) {
        mwi_oauth_resp_clear(&d);
        return rc;
    }
    /* RFC 8628 section 3.2: interval defaults to 5 s; the code's lifetime
     * bounds the polling (a server that says nothing: 30 minutes). */
    long long interval = d.interval > 0 ? d.interval : 5;
    long long life = d.expires_in > 0 ? d.expires_in : 1800;
    mw_oauth_device_prompt p = {d.verification_uri, d.verification_uri_complete, d.user_code,
                                (int)life, (int)interval};
    int stop = show ? show(&p, 0, userdata) : 0;
    if (stop) {
        /* The callback's value comes back unchanged (docs/CONVENTIONS.md). */
        mwi_oauth_resp_clear(&d);
        mwi_err_set(err, stop < 0 ? stop : MW_ECANCELED,
                    "device login stopped by the callback (%d)", stop);
        return stop;
    }
    rc = mwi_oauth_form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
    if (!rc) rc = mwi_oauth_form_add(&form, "device_code", d.device_code);
    if (!rc) rc = mwi_oauth_add_client(oa, &form);
    mwi_oauth_resp_clear(&d);
    if (rc) {
        mwi_oauth_wipe_free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    rc = poll_token(oa, form, life, interval, show, userdata, err);
    mwi_oauth_wipe_free(form);
    return rc;
}
