#!/usr/bin/perl
# Answers every GET with a greeting and the instance's hostname (one connection at a time).
use strict;
use warnings;
use IO::Socket::INET;

my $port = $ENV{PORT} || 8080;
my $greeting = $ENV{GREETING} || 'hello';
my $server = IO::Socket::INET->new(LocalPort => $port, Listen => 16, ReuseAddr => 1, Proto => 'tcp')
  or die "cannot listen on port $port: $!\n";
$SIG{PIPE} = 'IGNORE';
$| = 1;
print "listening on port $port\n";

sub hostname {
  open(my $fh, '<', '/etc/hostname') or return 'unknown';
  my $name = <$fh> // 'unknown';
  chomp $name;
  return $name;
}

while (my $client = $server->accept) {
  # a client that sends nothing must not hold the server forever
  eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 5;
    my $request = <$client> // '';
    while (my $line = <$client>) { last if $line =~ /^\r?\n$/ }
    my ($method, $path) = $request =~ m{^(\S+) (\S+)};
    my $body = sprintf("%s from %s\n", $greeting, hostname());
    my $status = ($method // '') eq 'GET' ? '200 OK' : '405 Method Not Allowed';
    print $client "HTTP/1.0 $status\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
    alarm 0;
  };
  close $client;
}
