# smtp.tcl -- Tcllib's smtp 1.4.5 API (::smtp::sendmessage) on mailwire's
# SMTP engine.
#
# The options, their checks and error texts, and Tcllib's header rules
# (envelope from the -header values only, Bcc removed and sent as a
# multipart/digest, Date and Message-ID added, Resent- mode, Sender) are
# applied here to a token of Tcllib's own mime package; the message is
# built with mime::buildmessage and sent by libmailwire
# (::mailwire::smtp::_send, bindings/tcl/smtpcmd.c): PIPELINING, STARTTLS
# with a certificate check, SASL from GNU SASL, deadlines.  See
# bindings/tcl/doc/mailwire-smtp.n for what differs from Tcllib and why.

package require Tcl 8.6
package require mime
package require mailwire

namespace eval ::smtp {
    namespace export sendmessage
    # How -servers and -ports go together: "1.4" (1.4.5: one port index,
    # moved on only when EHLO/HELO is refused) or "1.5" (pairs, as Tcllib
    # 1.5; a missing port is 25).  Whatever version number Tcl loaded the
    # binding under, it is 1.4.5's unless the program sets this.
    variable portRule 1.4
}

# Tcllib's mime chooses a part's transfer encoding by looking at every
# character of its body in Tcl (::mime::encodingasciiP, encodinglineP),
# which is most of a sendmessage's time; the binding puts C versions with
# the same results in their place (bindings/tcl/mimefast.c).
foreach {helper fast} {encodingasciiP asciiP encodinglineP lineP} {
    if {[info procs ::mime::$helper] ne "" && [info args ::mime::$helper] eq "line"} {
        rename ::mime::$helper {}
        interp alias {} ::mime::$helper {} ::mailwire::mime::$fast
    }
}

proc ::smtp::Boolean {value} {
    switch -- [string tolower $value] {
        0 - false - no - off { return 0 }
        1 - true - yes - on { return 1 }
        default { error "unknown boolean value: $value" }
    }
}

proc ::smtp::sendmessage {part args} {
    set p [Prepare $part $args]
    set code [catch {
        ::mailwire::smtp::_send {*}[dict get $p session] {*}[dict get $p message]
    } result opts]
    Restore $p
    return -options $opts $result
}

# mailwire's batch extension: the tokens, each with Tcllib's header rules
# and the same options, over one connection.  Returns one result per token
# (each what sendmessage returns for it).
proc ::smtp::sendmessages {parts args} {
    set prepared {}
    set messages {}
    foreach part $parts {
        if {[catch {Prepare $part $args} p opts]} {
            foreach q $prepared { Restore $q }
            return -options $opts $p
        }
        lappend prepared $p
        lappend messages [dict get $p message]
    }
    if {![llength $prepared]} {
        return {}
    }
    set code [catch {
        ::mailwire::smtp::_send {*}[dict get [lindex $prepared 0] session] -messages $messages
    } result opts]
    foreach q $prepared { Restore $q }
    return -options $opts $result
}

# Tcllib's option checks and header rules for one part: the session
# options, the message (envelope and bytes), and what to restore.
proc ::smtp::Prepare {part argList} {
    set args $argList
    set alo 0
    set debug 0
    set nullOrig 0
    set queue 0
    set maxsecs 120
    set originator ""
    set recipients ""
    set servers [list localhost]
    set client ""
    set ports [list 25]
    set usetls 1
    set tlspolicy {}
    set username {}
    set password {}
    # mailwire's own (none of them is needed by a Tcllib program).
    set mw [list]
    array set header {}
    set lowerL {}
    set mixedL {}

    if {[llength $args] % 2} {
        error "Each option must have a value!  Invalid option list: $args"
    }
    foreach {option value} $args {
        switch -- $option {
            -atleastone { set alo [Boolean $value] }
            -debug      { set debug [Boolean $value] }
            -queue      { set queue [Boolean $value] }
            -usetls     { set usetls [Boolean $value] }
            -tlspolicy  { set tlspolicy $value }
            -maxsecs    { set maxsecs [expr {$value < 0 ? 0 : $value}] }
            -header {
                if {[llength $value] != 2} {
                    error "-header expects a key and a value, not $value"
                }
                lassign $value mixed hvalue
                set lower [string tolower $mixed]
                if {$lower in {content-type content-transfer-encoding content-md5 mime-version}} {
                    error "Content-Type, Content-Transfer-Encoding, Content-MD5, and MIME-Version cannot be user-specified."
                }
                if {$lower ni $lowerL} {
                    lappend lowerL $lower
                    lappend mixedL $mixed
                }
                lappend header($lower) $hvalue
            }
            -originator {
                set originator $value
                if {$originator eq ""} { set nullOrig 1 }
            }
            -recipients { set recipients $value }
            -servers    { set servers $value }
            -client     { set client $value }
            -ports      { set ports $value }
            -username   { set username $value }
            -password   { set password $value }
            -cafile - -mechanisms - -timeout - -trace {
                lappend mw $option $value
            }
            -tlsverify - -allowplaintext {
                lappend mw $option [Boolean $value]
            }
            default { error "unknown option $option" }
        }
    }

    # Resent mode: a Resent-* header makes every derived name Resent-.
    set prefixL ""
    set prefixM ""
    if {[lsearch -glob $lowerL resent-*] >= 0} {
        set prefixL resent-
        set prefixM Resent-
    }
    foreach mixed {From Sender To cc Dcc Bcc Date Message-ID} {
        set lower [string tolower $mixed]
        set L($lower) $prefixL$lower
        set M($lower) $prefixM$mixed
    }

    # The originator: -originator, else the From values, else the user.
    if {$nullOrig} {
        set sender ""
    } else {
        set who -originator
        if {$originator eq ""} {
            if {![info exists header($L(from))]} {
                set originator $::tcl_platform(user)
            } else {
                set originator [join $header($L(from)) ,]
                set who $M(from)
            }
        }
        if {$L(from) ni $lowerL} {
            lappend lowerL $L(from)
            lappend mixedL $M(from)
            lappend header($L(from)) $originator
        }
        set addrs [::mime::parseaddress $originator]
        if {[llength $addrs] > 1} {
            error "too many mailboxes in $who: $originator"
        }
        array set aprops {error ""}
        array set aprops [lindex $addrs 0]
        if {$aprops(error) ne ""} {
            error "error in $who: $aprops(error)"
        }
        set sender $aprops(address)
        set from [join $header($L(from)) ,]
        if {$L(sender) ni $lowerL && $originator ne $from} {
            unset aprops
            array set aprops {error ""}
            array set aprops [lindex [::mime::parseaddress $from] 0]
            if {$aprops(error) ne ""} {
                error "error in $M(from): $aprops(error)"
            }
            if {$aprops(address) ne $sender} {
                lappend lowerL $L(sender)
                lappend mixedL $M(sender)
                lappend header($L(sender)) $aprops(address)
            }
        }
    }

    # The recipients: -recipients, else To, cc and Dcc (Dcc dropped).
    if {$recipients ne ""} {
        set who -recipients
    } elseif {![info exists header($L(to))]} {
        error "need -header \"$M(to) ...\""
    } else {
        set recipients [join $header($L(to)) ,]
        set who $M(to)
        if {[info exists header($L(cc))]} {
            append recipients , [join $header($L(cc)) ,]
            append who / $M(cc)
        }
        set i [lsearch -exact $lowerL $L(dcc)]
        if {$i >= 0} {
            append recipients , [join $header($L(dcc)) ,]
            append who / $M(dcc)
            unset header($L(dcc))
            set lowerL [lreplace $lowerL $i $i]
            set mixedL [lreplace $mixedL $i $i]
        }
    }

    # Bcc: never in the message; its addresses get the digest.
    set brecipients {}
    set i [lsearch -exact $lowerL $L(bcc)]
    if {$i >= 0} {
        set bcc 1
        foreach addr [::mime::parseaddress [join $header($L(bcc)) ,]] {
            array unset aprops
            array set aprops {error ""}
            array set aprops $addr
            if {$aprops(error) ne ""} {
                error "error in $M(bcc): $aprops(error)"
            }
            lappend brecipients $aprops(address)
        }
        unset header($L(bcc))
        set lowerL [lreplace $lowerL $i $i]
        set mixedL [lreplace $mixedL $i $i]
    } else {
        set bcc 0
    }
    if {$L(to) ni $lowerL} {
        lappend lowerL $L(bcc)
        lappend mixedL $M(bcc)
        lappend header($L(bcc)) ""
    }

    set vrecipients {}
    foreach addr [::mime::parseaddress $recipients] {
        array unset aprops
        array set aprops {error ""}
        array set aprops $addr
        if {$aprops(error) ne ""} {
            error "error in $who: $aprops(error)"
        }
        lappend vrecipients $aprops(address)
    }

    if {$L(date) ni $lowerL && [catch {::mime::getheader $part $L(date)}]} {
        lappend lowerL $L(date)
        lappend mixedL $M(date)
        lappend header($L(date)) [::mailwire::mime::now]
    }
    if {$L(message-id) ni $lowerL && [catch {::mime::getheader $part $L(message-id)}]} {
        lappend lowerL $L(message-id)
        lappend mixedL $M(message-id)
        lappend header($L(message-id)) [::mime::uniqueID]
    }

    # The part's own values of the fields about to be appended, restored
    # on return.
    set saved {}
    foreach lower $lowerL mixed $mixedL {
        if {[catch {::mime::getheader $part $lower} old]} {
            lappend saved $mixed {} 0
        } else {
            lappend saved $mixed $old 1
        }
        foreach value $header($lower) {
            ::mime::setheader $part $mixed $value -mode append
        }
    }

    if {$client eq ""} {
        if {$servers eq "localhost"} {
            set client localhost
        } else {
            set client [info hostname]
        }
    }

    set data [::mime::buildmessage $part]
    set bccdata {}
    set inner {}
    set outer {}
    if {$bcc} {
        set inner [::mime::initialize -canonical message/rfc822 \
                       -header [list Content-Description "Original Message"] \
                       -parts [list $part]]
        set subject "\[$M(bcc)\]"
        if {[info exists header(subject)]} {
            append subject " " [lindex $header(subject) 0]
        }
        set outer [::mime::initialize -canonical multipart/digest \
                       -header [list From $originator] \
                       -header [list Bcc ""] \
                       -header [list Date [::mailwire::mime::now]] \
                       -header [list Subject $subject] \
                       -header [list Message-ID [::mime::uniqueID]] \
                       -header [list Content-Description "Blind Carbon Copy"] \
                       -parts [list $inner]]
        set bccdata [::mime::buildmessage $outer]
    }

    set session [list -servers $servers -ports $ports \
                     -portrule $::smtp::portRule \
                     -client $client -usetls $usetls -tlspolicy $tlspolicy \
                     -username $username -password $password -debug $debug -maxsecs $maxsecs \
                     -queue $queue -atleastone $alo {*}$mw]
    set message [list -sender $sender -recipients $vrecipients -data $data \
                     -bcc $brecipients -bccdata $bccdata]
    return [dict create session $session message $message part $part saved $saved \
                inner $inner outer $outer]
}

# Finalizes the Bcc digest parts and puts the part's headers back.
proc ::smtp::Restore {p} {
    foreach k {inner outer} {
        if {[dict get $p $k] ne ""} {
            catch {::mime::finalize [dict get $p $k] -subordinates none}
        }
    }
    set part [dict get $p part]
    foreach {mixed old existed} [dict get $p saved] {
        if {$existed && [llength $old]} {
            # write mode keeps the field where it was in the part
            ::mime::setheader $part $mixed [lindex $old 0] -mode write
            foreach v [lrange $old 1 end] {
                ::mime::setheader $part $mixed $v -mode append
            }
        } else {
            catch {::mime::setheader $part $mixed {} -mode delete}
        }
    }
}

package provide smtp [expr {[info exists ::mailwire::smtpVersion] ? $::mailwire::smtpVersion : "1.4.5"}]
