/* mailwire Tcl binding: what the C files of bindings/tcl share.
 *
 * The Tcl-level commands (::pop3::*, ::smtp::sendmessage) live in
 * pop3.tcl and smtp.tcl, shaped like Tcllib's; the C commands below them
 * (::mailwire::pop3::*, ::mailwire::smtp::*) do every byte of I/O through
 * libmailwire's public API (the headers of include/mailwire) and nothing else. */
#ifndef MWTCL_H
#define MWTCL_H

#include <tcl.h>

/* Called from Mailwire_Init. */
int mwtcl_pop3_init(Tcl_Interp *interp);
int mwtcl_smtp_init(Tcl_Interp *interp);
int mwtcl_mime_init(Tcl_Interp *interp);

/* Sets the interp result to a Tcl error with errorCode
 * {MAILWIRE <area> <stage> <category>} and returns TCL_ERROR. */
int mwtcl_error(Tcl_Interp *interp, const char *area, const char *stage, int code, const char *msg);

#endif
