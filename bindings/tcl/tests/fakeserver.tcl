# fakeserver.tcl -- a scripted line server for the binding's tests, run as
# its own process (the client under test blocks in C, so the server cannot
# share its event loop).
#
#   tclsh fakeserver.tcl DIALOG-FILE LOG-FILE
#
# Prints the port it listens on (127.0.0.1), takes one connection and plays
# the dialog, one step a line:
#   Send TEXT      send TEXT and CRLF
#   Respond TEXT   read a line (logged), then send TEXT and CRLF
#   Read           read a line (logged)
#   Data TEXT      read message lines up to the lone ".", logged as one
#                  "DATA <n lines> <md5-free checksum>" entry, then send TEXT
#   DataNoReply    as Data, but no reply at all (a server that hangs)
#   Close          close the connection
# After the dialog it logs every further line until the client closes.
# The log holds the lines received, one a line, without their CR; a line
# that came without a CR (a bare LF) is logged with "LF:" before it.
lassign $argv dialogFile logFile
set f [open $dialogFile]
set dialog [split [string trimright [read $f] \n] \n]
close $f
set log [open $logFile w]
fconfigure $log -buffering line

proc logline {line} {
    global log
    if {[string index $line end] eq "\r"} {
        puts $log [string range $line 0 end-1]
    } else {
        puts $log "LF:$line"
    }
}
proc serve {sock addr port} {
    global dialog log done
    fconfigure $sock -translation binary -buffering none
    foreach step $dialog {
        set kind [lindex $step 0]
        set text [lindex $step 1]
        switch -exact -- $kind {
            Send { puts -nonewline $sock "$text\r\n" }
            Respond - Read {
                if {[gets $sock line] < 0} break
                logline $line
                if {$kind eq "Respond"} { puts -nonewline $sock "$text\r\n" }
            }
            Data - DataNoReply {
                set n 0
                set sum 0
                while {[gets $sock line] >= 0 && $line ne ".\r"} {
                    incr n
                    foreach c [split $line ""] { set sum [expr {($sum * 31 + [scan $c %c]) % 1000003}] }
                }
                puts $log "DATA $n $sum"
                if {$kind eq "Data"} { puts -nonewline $sock "$text\r\n" }
            }
            Close { close $sock; set done 1; return }
        }
    }
    while {[gets $sock line] >= 0} {
        logline $line
    }
    catch {close $sock}
    set done 1
}
set srv [socket -server serve -myaddr 127.0.0.1 0]
puts [lindex [fconfigure $srv -sockname] 2]
flush stdout
# A generous bound so a broken test cannot leave this process behind.
after 60000 {set done timeout}
vwait done
close $log
