# pop3.tcl -- Tcllib's pop3 1.11 API on mailwire's POP3 engine.
#
# The commands, their argument checks, error texts, return shapes and the
# state kept per channel are those of Tcllib pop3 1.11 (see
# bindings/tcl/doc/mailwire-pop3.n); the protocol work is done in C by
# libmailwire (::mailwire::pop3::_open and _op, bindings/tcl/pop3cmd.c)
# over the very channel that -socketcmd returned.

package require Tcl 8.6
package require cmdline
package require log
package require mailwire

namespace eval ::pop3 {
    variable state
    array set state {}
    # Options that Tcllib does not have, per channel (see open below).
    variable extra
    array set extra {}
}

# Tcllib's open options, then mailwire's own (only after them in the list
# below, and never seen by a program that does not give them).
proc ::pop3::open {args} {
    variable state
    variable extra
    array set cstate {socketcmd ::socket msex 0 retr_mode retr limit {} stls 0 tls-callback {}}
    set mw [::list]
    while {[set err [cmdline::getopt args {
        msex.arg retr-mode.arg socketcmd.arg stls.arg tls-callback.arg
        cafile.arg tlsverify.arg timeout.arg auth.arg mechanisms.arg trace.arg
        pipeline.arg servername.arg requiretls.arg tracesecrets.arg
    } opt arg]]} {
        if {$err < 0} {
            return -code error "::pop3::open : $arg"
        }
        switch -exact -- $opt {
            msex {
                if {![string is boolean $arg]} {
                    return -code error ":pop3::open : Argument to -msex has to be boolean"
                }
                set cstate(msex) $arg
            }
            retr-mode {
                if {$arg ni {retr list slow}} {
                    return -code error ":pop3::open : Argument to -retr-mode has to be one of retr, list or slow"
                }
                set cstate(retr_mode) $arg
            }
            socketcmd { set cstate(socketcmd) $arg }
            stls {
                # Tcllib's text names -tls; kept as it is.
                if {![string is boolean $arg]} {
                    return -code error ":pop3::open : Argument to -tls has to be boolean"
                }
                set cstate(stls) $arg
            }
            tls-callback { set cstate(tls-callback) $arg }
            tlsverify - requiretls - pipeline - tracesecrets {
                if {![string is boolean -strict $arg]} {
                    return -code error ":pop3::open : Argument to -$opt has to be boolean"
                }
                lappend mw -$opt $arg
            }
            timeout {
                if {![string is integer -strict $arg] || $arg < 0} {
                    return -code error ":pop3::open : Argument to -timeout has to be a number of milliseconds"
                }
                lappend mw -timeout $arg
            }
            auth {
                if {$arg ni {auto user apop sasl}} {
                    return -code error ":pop3::open : Argument to -auth has to be one of auto, user, apop or sasl"
                }
                lappend mw -auth $arg
            }
            default { lappend mw -$opt $arg }
        }
    }
    if {[llength $args] > 4} {
        return -code error "To many arguments to ::pop3::open"
    }
    if {[llength $args] < 3} {
        return -code error "Not enough arguments to ::pop3::open"
    }
    lassign $args host user password port
    if {$port eq {}} {
        if {[lindex $cstate(socketcmd) 0] in {tls::socket ::tls::socket}} {
            set port 995
        } else {
            set port 110
        }
    }
    set chan [{*}$cstate(socketcmd) $host $port]

    if {[catch {
        ::mailwire::pop3::_open $chan $host $user $password \
            -msex $cstate(msex) -retr-mode $cstate(retr_mode) -stls $cstate(stls) \
            -tls-callback $cstate(tls-callback) {*}$mw
    } msg opts]} {
        catch {::close $chan}
        set stage [lindex [dict get $opts -errorcode] 2]
        switch -exact -- $stage {
            login  { set prefix "POP3 LOGIN ERROR: " }
            stat   { set prefix "POP3 STAT ERROR: " }
            stls   { set prefix "POP3 STLS ERROR: " }
            nostls {
                return -code error -errorcode [dict get $opts -errorcode] \
                    "POP CONNECT ERROR: STLS requested but not supported by server"
            }
            tls    { set prefix "POP3 CONNECT/TLS HANDSHAKE ERROR: " }
            default { set prefix "POP3 CONNECT ERROR: " }
        }
        return -code error -errorcode [dict get $opts -errorcode] $prefix$msg
    }
    # STAT was sent by the engine at login; its count is the range limit.
    set cstate(limit) [dict get [::mailwire::pop3::_op info $chan] count]
    set state($chan) [array get cstate]
    return $chan
}

proc ::pop3::config {chan} {
    variable state
    return $state($chan)
}

proc ::pop3::close {chan} {
    variable state
    catch {::mailwire::pop3::_op quit $chan}
    ::mailwire::pop3::_op forget $chan
    unset state($chan)
    ::close $chan
    return
}

# Tcllib's range rules for retrieve and delete: start is an integer,
# next (LAST + 1; n* also matches, as Tcllib's reversed [string match]
# does), start (1) or end (the count from open); end is an integer (-1:
# start only), end or last; end is clamped to the count.
proc ::pop3::Range {chan start end what} {
    variable state
    array set cstate $state($chan)
    set count $cstate(limit)
    set last 0
    catch {set last [::pop3::last $chan]}
    if {![string is integer $start]} {
        if {[string match $start next]} {
            set start [expr {$last + 1}]
        } elseif {$start eq "start"} {
            set start 1
        } elseif {$start eq "end"} {
            set start $count
        } else {
            error "POP3 $what error: Bad start index $start"
        }
    }
    if {$start == 0} {
        set start 1
    }
    if {![string is integer $end]} {
        if {$end eq "end"} {
            set end $count
        } elseif {$end eq "last"} {
            set end $last
        } else {
            error "POP3 $what error: Bad end index $end"
        }
    } elseif {$end < 0} {
        set end $start
    }
    if {$end > $count} {
        set end $count
    }
    return [::list $start $end]
}

proc ::pop3::retrieve {chan start {end -1}} {
    variable state
    lassign [Range $chan $start $end Retrieval] start end
    if {$start > $end} {
        return {}
    }
    set res [::mailwire::pop3::_op retr $chan $start $end]
    # The engine falls back from retr to list to slow as Tcllib does; the
    # state shows the mode now in use.
    array set cstate $state($chan)
    set mode [::mailwire::pop3::_op mode $chan]
    if {$mode ne $cstate(retr_mode)} {
        set cstate(retr_mode) $mode
        set state($chan) [array get cstate]
    }
    return $res
}

proc ::pop3::delete {chan start {end -1}} {
    lassign [Range $chan $start $end Deletion] start end
    if {$start > $end} {
        return {}
    }
    if {[catch {::mailwire::pop3::_op dele $chan $start $end} errorStr]} {
        error "POP3 DELETE ERROR: $errorStr"
    }
    return {}
}

proc ::pop3::last {chan} {
    if {[catch {::mailwire::pop3::_op last $chan} errorStr]} {
        error "POP3 LAST ERROR: $errorStr"
    }
    return $errorStr
}

proc ::pop3::status {chan} {
    if {[catch {::mailwire::pop3::_op status $chan} errorStr]} {
        error "POP3 STAT ERROR: $errorStr"
    }
    return $errorStr
}

proc ::pop3::list {chan {msg ""}} {
    if {$msg eq ""} {
        if {[catch {::mailwire::pop3::_op list $chan} errorStr]} {
            error "POP3 LIST ERROR: $errorStr"
        }
        return $errorStr
    }
    if {[catch {expr {0 + $msg}}]} {
        error "POP3 LIST ERROR: malformed message number '$msg'"
    }
    return [::mailwire::pop3::_op list $chan $msg]
}

proc ::pop3::uidl {chan {msg ""}} {
    if {$msg eq ""} {
        if {[catch {::mailwire::pop3::_op uidl $chan} errorStr]} {
            error "POP3 UIDL ERROR: $errorStr"
        }
        return $errorStr
    }
    if {[catch {expr {0 + $msg}}]} {
        error "POP3 UIDL ERROR: malformed message number '$msg'"
    }
    return [::mailwire::pop3::_op uidl $chan $msg]
}

proc ::pop3::top {chan msg n} {
    if {[catch {::mailwire::pop3::_op top $chan $msg $n} errorStr]} {
        error "POP3 TOP ERROR: $errorStr"
    }
    return $errorStr
}

proc ::pop3::capa {chan} {
    if {[catch {::mailwire::pop3::_op capa $chan} errorStr]} {
        error "POP3 CAPA ERROR: $errorStr"
    }
    return $errorStr
}

package provide pop3 1.11
