# mailwire's Tcl binding: Tcllib's pop3 and smtp APIs on libmailwire.
#
# Which smtp a plain [package require smtp] gets: Tcl takes the highest
# version offered, and Debian's tcllib offers smtp 1.5.1.  The binding is
# offered as 1.4.5 (the API it follows) and as 1.5.1.1, so that once this
# directory is on auto_path, [package require smtp] and
# [package require smtp 1.4.5] load the binding, and
# [package require -exact smtp 1.5.1] still loads Tcllib's own.  pop3 1.11
# is above Debian's 1.10, so [package require pop3] gets the binding.
if {![package vsatisfies [package provide Tcl] 8.6]} {return}
package ifneeded mailwire 0.1 [list ::load [file join $dir mailwiretcl[info sharedlibextension]] Mailwire]
package ifneeded pop3 1.11 [list source [file join $dir pop3.tcl]]
package ifneeded smtp 1.4.5 [list apply {dir {
    namespace eval ::mailwire {variable smtpVersion 1.4.5}
    source [file join $dir smtp.tcl]
}} $dir]
# 1.5.1.1 only so that it outranks Debian's Tcllib 1.5.1; the API is
# 1.4.5's either way (see ::smtp::portRule in smtp.tcl).
package ifneeded smtp 1.5.1.1 [list apply {dir {
    namespace eval ::mailwire {variable smtpVersion 1.5.1.1}
    source [file join $dir smtp.tcl]
}} $dir]
