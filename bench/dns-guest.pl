# Runs inside a Debian instance (bench/dns-vm.ts copies it there over SSH). The base image has
# perl-base but no Time::HiRes, python or dig: the clock is read with the clock_gettime syscall
# (228 on x86_64, CLOCK_MONOTONIC) and queries are built by hand, so one process times every
# query without a fork per lookup. Prints the durations (ns) on one line, then `FAIL <n>`.
#   perl dns-guest.pl clock  - - - <count>            the cost of one timestamp (two back to back)
#   perl dns-guest.pl udp <server> <port> <name> <count>   A queries, one at a time; %d in <name> is the index
#   perl dns-guest.pl udp loopback 0 <name> <count>     the same against an echo in the guest (its own floor)
#   perl dns-guest.pl getent - - <name> <count>         `getent ahostsv4 <name>`, fork+exec each (libc's resolver)
use strict;
use warnings;
use Socket;

my ($mode, $server, $port, $pattern, $count) = @ARGV;

sub now {
  my $buf = "\0" x 16;
  syscall(228, 1, $buf) == 0 or die "clock_gettime: $!\n";
  my ($s, $ns) = unpack('q<q<', $buf);
  return $s * 1e9 + $ns;
}

my (@ns, $fail, $child);
$fail = 0;
if ($mode eq 'clock') {
  for (1 .. $count) {
    my $t0 = now();
    my $t1 = now();
    push @ns, int($t1 - $t0);
  }
} elsif ($mode eq 'getent') {
  open(my $saved, '>&', \*STDOUT) or die "dup: $!\n";
  open(STDOUT, '>', '/dev/null') or die "/dev/null: $!\n";
  for my $i (1 .. $count) {
    (my $name = $pattern) =~ s/%d/$i/g;
    my $t0 = now();
    my $rc = system('getent', 'ahostsv4', $name);
    my $t1 = now();
    if ($rc == 0) { push @ns, int($t1 - $t0) } else { $fail++ }
  }
  open(STDOUT, '>&', $saved) or die "dup: $!\n";
} elsif ($mode eq 'udp') {
  my $echo = $server eq 'loopback';
  if ($echo) {
    socket(my $r, PF_INET, SOCK_DGRAM, 0) or die "socket: $!\n";
    bind($r, sockaddr_in(0, inet_aton('127.0.0.1'))) or die "bind: $!\n";
    ($port) = sockaddr_in(getsockname($r));
    $server = '127.0.0.1';
    $child = fork() // die "fork: $!\n";
    if ($child == 0) {
      # a response is the query with QR and RA set: what the querier checks, nothing more
      for (;;) {
        my $from = recv($r, my $m, 4096, 0);
        exit 0 unless defined $from;
        substr($m, 2, 2) = pack('n', 0x8180);
        send($r, $m, 0, $from);
      }
    }
  }
  socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!\n";
  connect($s, sockaddr_in($port, inet_aton($server))) or die "connect: $!\n";
  for my $i (1 .. $count) {
    (my $name = $pattern) =~ s/%d/$i/g;
    my $id = $i & 0xffff;
    my $q = pack('nnnnnn', $id, 0x0100, 1, 0, 0, 0) . join('', map { chr(length) . $_ } split /\./, $name) . "\0" . pack('nn', 1, 1);
    my $ok = 0;
    my $t0 = now();
    send($s, $q, 0) or die "send: $!\n";
    for (;;) {
      my $rin = '';
      vec($rin, fileno($s), 1) = 1;
      last unless select($rin, undef, undef, 3) > 0;
      defined recv($s, my $a, 4096, 0) or last;
      my ($rid, $flags, $qd, $an) = unpack('nnnn', $a);
      # a late answer to an earlier query that timed out: keep waiting for this one
      next unless $rid == $id;
      $ok = ($flags & 0x8000) && ($echo || (($flags & 0xf) == 0 && $an > 0));
      last;
    }
    my $t1 = now();
    if ($ok) { push @ns, int($t1 - $t0) } else { $fail++ }
  }
  kill('KILL', $child) if $child;
} else {
  die "unknown mode $mode\n";
}
print join(' ', @ns), "\nFAIL $fail\n";
