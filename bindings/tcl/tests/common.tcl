# common.tcl -- what the binding's .test files share.
#
# MW_TCL_IMPL selects what is tested: "mailwire" (default: the binding,
# found through TCLLIBPATH) or "tcllib" (Tcllib's own pure-Tcl packages,
# the reference the same test files run against).  Tests whose result is
# known to differ carry the constraint "mailwireOnly" or "tcllibOnly", and
# say why.
package require tcltest
namespace import ::tcltest::*

set ::impl [expr {[info exists ::env(MW_TCL_IMPL)] ? $::env(MW_TCL_IMPL) : "mailwire"}]
testConstraint mailwireOnly [expr {$::impl eq "mailwire"}]
testConstraint tcllibOnly [expr {$::impl eq "tcllib"}]
set ::testDir [file dirname [file normalize [info script]]]

proc requireImpl {pkg mwVersion tcllibVersion} {
    if {$::impl eq "tcllib"} {
        # Tcllib's own, whatever else is on auto_path.
        if {[catch {package require -exact $pkg $tcllibVersion} err]} {
            puts "SKIPFILE: Tcllib's $pkg $tcllibVersion not installed ($err)"
            exit 0
        }
    } else {
        package require -exact $pkg $mwVersion
    }
}

# The real servers (tests/servers/start.sh) are there when their env is.
testConstraint servers [info exists ::env(MW_POP3_PORT)]
testConstraint tls [expr {![catch {package require tls}]}]

# ---- the scripted server ----------------------------------------------------
set ::fake(n) 0
set ::fake(pipe) {}
# The dialogs and logs live in a directory of this run, removed at exit.
set ::fake(dir) [file join [expr {[info exists ::env(TMPDIR)] ? $::env(TMPDIR) : "/tmp"}] \
                     mwtcl-test-[pid]]
file mkdir $::fake(dir)
rename exit __exit_before_mwtcl
proc exit {{code 0}} {
    catch {file delete -force $::fake(dir)}
    __exit_before_mwtcl $code
}
proc setupServer {dialog} {
    global fake
    incr fake(n)
    set base [file join $fake(dir) fake$fake(n)]
    set fake(dialog) $base.dialog
    set fake(log) $base.log
    set f [open $fake(dialog) w]
    puts $f [join $dialog \n]
    close $f
    set fake(pipe) [open |[list [info nameofexecutable] [file join $::testDir fakeserver.tcl] \
                               $fake(dialog) $fake(log)] r]
    gets $fake(pipe) port
    return $port
}
# Waits for the server to finish (the client closed) and returns its log.
proc serverLog {} {
    global fake
    catch {close $fake(pipe)}
    set fake(pipe) {}
    set f [open $fake(log)]
    set l [split [string trimright [read $f] \n] \n]
    close $f
    file delete $fake(dialog) $fake(log)
    return $l
}
proc serverStop {} {
    global fake
    if {$fake(pipe) ne ""} {
        catch {exec kill [pid $fake(pipe)]}
        catch {close $fake(pipe)}
        set fake(pipe) {}
    }
    catch {file delete $fake(dialog) $fake(log)}
}

# The sorted view of ::pop3::config, as Tcllib's own test suite takes it.
proc peek {chan} {
    set res {}
    array set _ [::pop3::config $chan]
    foreach k [lsort [array names _]] {
        lappend res $k $_($k)
    }
    return $res
}
proc blot {txt sock} {
    string map [list $sock SOCK] $txt
}
