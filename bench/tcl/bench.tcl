# bench.tcl -- one timed run of the Tcl binding or of Tcllib's pure-Tcl
# packages (bench.sh runs it; not a test).  Prints one line:
#   {"what":..., "impl":..., "ms":N, "count":N, "bytes":N}
#
#   tclsh bench.tcl retr IMPL PORT USER PASS ?extra open options?
#   tclsh bench.tcl send IMPL PORT COUNT SIZE each|batch
# IMPL: tcllib (pop3 1.10 / smtp 1.5.1 of Debian's tcllib) or mailwire
# (found through TCLLIBPATH).
lassign $argv what impl port
proc loadImpl {pkg mw tl} {
    if {$::impl eq "tcllib"} {
        package require -exact $pkg $tl
    } else {
        package require -exact $pkg $mw
    }
}
# This process's CPU time (user + system) in ms, from /proc (Linux).
proc cpu {} {
    set f [open /proc/self/stat]
    set st [read $f]
    close $f
    set rest [lrange [string range $st [expr {[string last ")" $st] + 2}] end] 0 end]
    # utime and stime are fields 14 and 15 (11 and 12 after the name).
    expr {([lindex $rest 11] + [lindex $rest 12]) * 1000 / 100}
}
proc report {ms count bytes} {
    puts [format {{"what":"%s","impl":"%s","ms":%d,"cpu_ms":%d,"count":%d,"bytes":%d}} \
              $::what $::impl $ms [expr {[cpu] - $::cpu0}] $count $bytes]
}
switch -- $what {
    retr {
        lassign [lrange $argv 3 end] user pass
        set extra [lrange $argv 5 end]
        loadImpl pop3 1.11 1.10
        # What a program does against the debug noise of Tcllib's pop3.
        ::log::lvSuppress debug
        set t0 [clock milliseconds]
        set ::cpu0 [cpu]
        set c [pop3::open {*}$extra 127.0.0.1 $user $pass $port]
        set msgs [pop3::retrieve $c start end]
        pop3::close $c
        set ms [expr {[clock milliseconds] - $t0}]
        set bytes 0
        foreach m $msgs { incr bytes [string length $m] }
        report $ms [llength $msgs] $bytes
    }
    send {
        lassign [lrange $argv 3 end] count size how
        loadImpl smtp 1.4.5 1.5.1
        package require mime
        set line "[string repeat x 75]\n"
        set body [string repeat $line [expr {$size / 76}]]
        set toks {}
        for {set i 0} {$i < $count} {incr i} {
            lappend toks [mime::initialize -canonical text/plain -string $body]
        }
        set opts [list -servers 127.0.0.1 -ports $port -header {From t1@test.domain} \
                      -header {To t2@test.domain} -header {Subject bench}]
        set t0 [clock milliseconds]
        set ::cpu0 [cpu]
        if {$how eq "batch"} {
            set r [smtp::sendmessages $toks {*}$opts]
            if {[llength $r] != $count || [llength [join $r]]} { error "batch: $r" }
        } else {
            foreach t $toks {
                set r [smtp::sendmessage $t {*}$opts]
                if {$r ne ""} { error "refused: $r" }
            }
        }
        set ms [expr {[clock milliseconds] - $t0}]
        report $ms $count [expr {$count * [string length $body]}]
    }
}
