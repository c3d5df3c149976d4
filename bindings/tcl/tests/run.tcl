# run.tcl -- runs one tcltest file and prints its results as TAP (the
# project's test runner counts TAP cases: tests/summary.py).
#   tclsh run.tcl FILE.test
# A file that dies before its end shows as a failing "(load)" case.
set file [file normalize [lindex $argv 0]]
if {[lindex $argv 1] eq "--child"} {
    # The child: tcltest reads ::argv as its own options.
    set ::argv {}
    package require tcltest
    tcltest::configure -verbose {pass skip error} -singleproc 1
    source $file
    exit 0
}
# The parent runs the file in a child tclsh (a crash is then a failure, not
# a silent stop) and turns tcltest's verbose report into TAP.
catch {exec [info nameofexecutable] [info script] $file --child 2>@1} output
set lines [split $output \n]
if {[regexp -line {^SKIPFILE: (.*)$} $output -> why]} {
    puts "1..0 # SKIP $why"
    exit 0
}
set n 0
set tap {}
set detail {}
set infail {}
foreach line $lines {
    if {$infail ne ""} {
        if {[string match "==== $infail FAILED" $line]} {
            lappend tap "not ok [incr n] - $infail"
            foreach d $detail { lappend tap "# $d" }
            set infail {}
            set detail {}
        } else {
            lappend detail $line
        }
    } elseif {[regexp {^\+\+\+\+ (\S+) PASSED} $line -> name]} {
        lappend tap "ok [incr n] - $name"
    } elseif {[regexp {^\+\+\+\+ (\S+) SKIPPED: (.*)$} $line -> name why]} {
        lappend tap "ok [incr n] - $name # SKIP $why"
    } elseif {[regexp {^==== (\S+) .*FAILED$} $line -> name] || \
              [regexp {^==== (\S+) FAILED$} $line -> name]} {
        set infail $name
    } elseif {[regexp {^==== (\S+) } $line -> name]} {
        # the test's description line
        lappend detail $line
    }
}
if {$infail ne ""} {
    lappend tap "not ok [incr n] - $infail"
    foreach d $detail { lappend tap "# $d" }
}
# A sanitizer's report (the module is instrumented in the test build) is a
# failure of its own, whatever the tests said.
set san [lsearch -all -inline -regexp $lines {ERROR: (Address|Leak)Sanitizer|runtime error:}]
if {[llength $san]} {
    lappend tap "not ok [incr n] - sanitizer report"
    foreach d [lrange $san 0 20] { lappend tap "# $d" }
}
if {![regexp -line {^\S+:\tTotal\t} $output]} {
    lappend tap "not ok [incr n] - (load) the file did not run to its end"
    foreach d [lrange $lines end-20 end] { lappend tap "# $d" }
}
puts "1..$n"
puts [join $tap \n]
exit [expr {[llength [lsearch -all $tap "not ok*"]] > 0}]
