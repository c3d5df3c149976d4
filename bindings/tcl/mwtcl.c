/* mailwire Tcl binding: the package entry point (load ... Mailwire). */
#include "mwtcl.h"

#include <mailwire/common.h>
#include <mailwire/error.h>

int mwtcl_error(Tcl_Interp *interp, const char *area, const char *stage, int code, const char *msg)
{
    Tcl_SetObjResult(interp, Tcl_NewStringObj(msg, -1));
    Tcl_SetErrorCode(interp, "MAILWIRE", area, stage, code ? mw_error_category(code) : "ok",
                     (char *)NULL);
    return TCL_ERROR;
}

/* Exported for Tcl's [load]; the symbol name is fixed by Tcl (prefix from
 * the package name "Mailwire"). */
__attribute__((visibility("default"))) int Mailwire_Init(Tcl_Interp *interp);

int Mailwire_Init(Tcl_Interp *interp)
{
    if (!Tcl_InitStubs(interp, "8.6", 0)) return TCL_ERROR;
    if (mwtcl_pop3_init(interp) != TCL_OK) return TCL_ERROR;
    if (mwtcl_smtp_init(interp) != TCL_OK) return TCL_ERROR;
    if (mwtcl_mime_init(interp) != TCL_OK) return TCL_ERROR;
    Tcl_SetVar2(interp, "::mailwire::version", NULL, mw_version(), TCL_GLOBAL_ONLY);
    return Tcl_PkgProvide(interp, "mailwire", "0.1");
}
