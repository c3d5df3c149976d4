/* mailwire Tcl binding: ::mailwire::smtp::* (filled in by the smtp step). */
#include "mwtcl.h"

int mwtcl_smtp_init(Tcl_Interp *interp)
{
    (void)interp;
    return TCL_OK;
}
