/* mailwire Tcl binding: C versions of the hot per-line helpers of Tcllib's
 * mime package and of the Date value smtp adds, with the same results.
 * smtp.tcl puts them in place of ::mime::encodingasciiP and
 * ::mime::encodinglineP, which scan a body one character at a time in Tcl
 * and cost Tcllib's sendmessage most of its time. */
#include "mwtcl.h"

#include <string.h>
#include <time.h>

/* ::mime::encodingasciiP: every character is a space, tab, CR, LF or, as
 * [binary scan $c c] sees it (its low byte, signed), 32..126; and no CR
 * at all (Tcllib's test for a final CR compares with a braced string, so
 * it never holds). */
static int cmd_asciip(ClientData cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    (void)cd;
    if (objc != 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "line");
        return TCL_ERROR;
    }
    int n;
    Tcl_UniChar *u = Tcl_GetUnicodeFromObj(objv[1], &n);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        Tcl_UniChar c = u[i];
        if (c == '\r') ok = 0;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        signed char b = (signed char)(c & 0xFF);
        if (b < 32 || b > 126) ok = 0;
    }
    Tcl_SetObjResult(interp, Tcl_NewIntObj(ok));
    return TCL_OK;
}

/* The characters [string trimright] removes by default in Tcl 8.6. */
static int trim_char(Tcl_UniChar c)
{
    if (c == 0 || c == ' ' || (c >= 0x09 && c <= 0x0d)) return 1;
    switch (c) {
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x180e:
    case 0x200b:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
    case 0xfeff:
        return 1;
    }
    return c >= 0x2000 && c <= 0x200a;
}

/* ::mime::encodinglineP: at most 76 characters, nothing [string trimright]
 * would remove at the end, not starting with "." or "From ". */
static int cmd_linep(ClientData cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    (void)cd;
    if (objc != 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "line");
        return TCL_ERROR;
    }
    int n;
    Tcl_UniChar *u = Tcl_GetUnicodeFromObj(objv[1], &n);
    int ok = n <= 76;
    if (ok && n > 0 && trim_char(u[n - 1])) ok = 0;
    if (ok && n > 0 && u[0] == '.') ok = 0;
    if (ok && n >= 5 && u[0] == 'F' && u[1] == 'r' && u[2] == 'o' && u[3] == 'm' && u[4] == ' ')
        ok = 0;
    Tcl_SetObjResult(interp, Tcl_NewIntObj(ok));
    return TCL_OK;
}

/* [::mime::parsedatetime -now proper]: "Mon, 07 Dec 2026 06:30:30 +0100",
 * local time and its offset from UTC. */
static int cmd_date(ClientData cd, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    (void)cd;
    (void)objv;
    if (objc != 1) {
        Tcl_WrongNumArgs(interp, 1, objv, "");
        return TCL_ERROR;
    }
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm lt;
    localtime_r(&now, &lt);
    long off = lt.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    char buf[64];
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", wd[lt.tm_wday],
             lt.tm_mday, mo[lt.tm_mon], lt.tm_year + 1900, lt.tm_hour, lt.tm_min, lt.tm_sec, sign,
             off / 60, off % 60);
    Tcl_SetObjResult(interp, Tcl_NewStringObj(buf, -1));
    return TCL_OK;
}

int mwtcl_mime_init(Tcl_Interp *interp)
{
    Tcl_CreateObjCommand(interp, "::mailwire::mime::asciiP", cmd_asciip, NULL, NULL);
    Tcl_CreateObjCommand(interp, "::mailwire::mime::lineP", cmd_linep, NULL, NULL);
    Tcl_CreateObjCommand(interp, "::mailwire::mime::now", cmd_date, NULL, NULL);
    return TCL_OK;
}
