# autoresponder.tcl -- a small vacation-style autoresponder written against
# Tcllib's pop3, smtp and mime APIs, the kind of program the Tcl binding
# runs unchanged (with the binding on auto_path it runs on mailwire).
#
#   tclsh autoresponder.tcl ?options?
#     -pophost H -popport N -user U        the mailbox (password: env MW_PASSWORD)
#     -cafile F                            CA for STLS / STARTTLS (binding only)
#     -smtphost H -smtpport N              where replies go (AUTH as the same user)
#     -from ADDR -text FILE                the reply's sender and body
#     -state FILE                          the messages handled and the people answered
#     -delete 0|1                          delete a message once it is handled
#
# Rules (RFC 3834 §2): no reply to automatic mail (Auto-Submitted other than
# "no", Precedence bulk/list/junk, List-Id, an empty or MAILER-DAEMON
# sender) nor to ourselves; one reply per sender per run of the state file.
# A message is recorded as handled (and deleted, if asked) only after its
# reply was accepted or it was skipped, and the state is written (to a new
# file, then renamed) before the deletions are committed by QUIT.
package require pop3
package require smtp
package require mime

array set opt {-pophost 127.0.0.1 -popport 110 -user {} -cafile {} -smtphost 127.0.0.1
    -smtpport 587 -from {} -text {} -state autoresponder.state -delete 0}
foreach {k v} $argv {
    if {![info exists opt($k)]} { puts stderr "unknown option $k"; exit 2 }
    set opt($k) $v
}
if {$opt(-user) eq "" || ![info exists ::env(MW_PASSWORD)]} {
    puts stderr "need -user and the password in MW_PASSWORD"
    exit 2
}
set password $::env(MW_PASSWORD)
set from [expr {$opt(-from) ne "" ? $opt(-from) : $opt(-user)}]
set body "I am away and will read your message when I am back.\n"
if {$opt(-text) ne ""} {
    set f [open $opt(-text)]
    set body [read $f]
    close $f
}
# mailwire's extra options, given only when the binding is loaded.
set mw [expr {[package vsatisfies [package present pop3] 1.11] && $opt(-cafile) ne ""}]

# State: handled UIDs and answered addresses.
array set handled {}
array set answered {}
if {[file exists $opt(-state)]} {
    set f [open $opt(-state)]
    foreach {kind value} [read $f] { set ${kind}($value) 1 }
    close $f
}
proc saveState {} {
    set tmp $::opt(-state).new
    set f [open $tmp w]
    foreach u [array names ::handled] { puts $f [list handled $u] }
    foreach a [array names ::answered] { puts $f [list answered $a] }
    close $f
    file rename -force $tmp $::opt(-state)
}

proc header {tok name} {
    if {[catch {mime::getheader $tok $name} v]} { return "" }
    return [lindex $v 0]
}
# RFC 3834 §2: is this a message we may answer?  Returns the address or "".
proc replyTo {tok} {
    set auto [string tolower [string trim [header $tok Auto-Submitted]]]
    if {$auto ne "" && $auto ne "no"} { return "" }
    if {[string tolower [string trim [header $tok Precedence]]] in {bulk list junk}} { return "" }
    if {[header $tok List-Id] ne ""} { return "" }
    set who [header $tok Reply-To]
    if {$who eq ""} { set who [header $tok From] }
    set a [lindex [mime::parseaddress $who] 0]
    if {[dict get $a error] ne ""} { return "" }
    set addr [dict get $a address]
    if {$addr eq "" || [string match -nocase mailer-daemon@* $addr] ||
        [string equal -nocase $addr $::from] || [string equal -nocase $addr $::opt(-user)]} {
        return ""
    }
    return $addr
}

set popopts [expr {$mw ? [list -stls 1 -cafile $opt(-cafile)] : {}}]
set smtpopts [list -servers $opt(-smtphost) -ports $opt(-smtpport) \
                  -username $opt(-user) -password $password]
if {$mw} { lappend smtpopts -cafile $opt(-cafile) }

set chan [pop3::open {*}$popopts $opt(-pophost) $opt(-user) $password $opt(-popport)]
set count [lindex [pop3::status $chan] 0]
set todelete {}
set replies 0
for {set i 1} {$i <= $count} {incr i} {
    set uid [lindex [pop3::uidl $chan $i] 1]
    if {[info exists handled($uid)]} continue
    set tok [mime::initialize -string [lindex [pop3::retrieve $chan $i] 0]]
    set addr [replyTo $tok]
    if {$addr ne "" && ![info exists answered([string tolower $addr])]} {
        set subject [header $tok Subject]
        set reply [mime::initialize -canonical text/plain -string $body]
        set h [list -header [list From $from] -header [list To $addr] \
                   -header [list Subject "Auto: $subject"] -header {Auto-Submitted auto-replied}]
        set msgid [header $tok Message-ID]
        if {$msgid ne ""} {
            lappend h -header [list In-Reply-To $msgid] -header [list References $msgid]
        }
        # The null reverse-path: nothing bounces back to an autoresponder.
        set rejected [smtp::sendmessage $reply {*}$smtpopts -originator "" {*}$h]
        mime::finalize $reply
        if {$rejected ne ""} {
            puts stderr "reply to $addr refused: $rejected"
        } else {
            set answered([string tolower $addr]) 1
            incr replies
        }
    }
    mime::finalize $tok
    set handled($uid) 1
    lappend todelete $i
}
saveState
if {$opt(-delete)} {
    foreach i $todelete { pop3::delete $chan $i }
}
pop3::close $chan
puts "$count messages, $replies replies"
