'use strict';
/*
 * silver's stand-in for the `ip` package (1.x), installed in its place under pkgcloud by an npm
 * override in the root package.json. Every published `ip` is inside GHSA-2p57-rm9w-gvfp
 * (CVE-2024-29415: isPublic() calls non-canonical forms such as "127.1", "012.1.2.3" or
 * "0x7f.1" public), which has no fixed release.
 *
 * pkgcloud uses two functions of ip, in lib/pkgcloud/core/compute/index.js: isPrivate (the
 * openstack/rackspace server model sorts the addresses of networks not named public/private
 * with it) and isPublic (serverIp). Both are here, with ip 1.x's ranges, on addresses parsed by
 * node's own net.isIP: dotted-quad IPv4 without octal, hex or shortened forms, and IPv6 text
 * (IPv4-mapped forms are checked against the IPv4 ranges). A string that is no address is never
 * public. "This network" (0.0.0.0/8) is added to ip 1.x's ranges. isLoopback, isV4Format and
 * isV6Format are kept; any other ip function throws, naming itself.
 */
const net = require('node:net');

const notPublic = new net.BlockList();
notPublic.addSubnet('0.0.0.0', 8, 'ipv4'); // "this network"
notPublic.addSubnet('10.0.0.0', 8, 'ipv4'); // RFC 1918
notPublic.addSubnet('127.0.0.0', 8, 'ipv4'); // loopback
notPublic.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local
notPublic.addSubnet('172.16.0.0', 12, 'ipv4'); // RFC 1918
notPublic.addSubnet('192.168.0.0', 16, 'ipv4'); // RFC 1918
notPublic.addAddress('::', 'ipv6'); // unspecified
notPublic.addAddress('::1', 'ipv6'); // loopback
notPublic.addSubnet('fc00::', 7, 'ipv6'); // unique local
notPublic.addSubnet('fe80::', 10, 'ipv6'); // link-local

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** 'ipv4', 'ipv6', or null when addr is not an address as net.isIP reads it. */
function familyOf(addr) {
  if (typeof addr !== 'string') return null;
  const f = net.isIP(addr);
  return f === 4 ? 'ipv4' : f === 6 ? 'ipv6' : null;
}

function isPublic(addr) {
  const f = familyOf(addr);
  return f !== null && !notPublic.check(addr, f);
}

function isPrivate(addr) {
  return !isPublic(addr);
}

function isLoopback(addr) {
  const f = familyOf(addr);
  return f !== null && loopback.check(addr, f);
}

function isV4Format(addr) {
  return typeof addr === 'string' && net.isIPv4(addr);
}

function isV6Format(addr) {
  return typeof addr === 'string' && net.isIPv6(addr);
}

function unsupported(name) {
  return function () {
    throw new Error(
      `ip.${name}() is not provided by silver's stand-in for the ip package (vendor/ip-strict): ` +
        'pkgcloud only needs isPrivate/isPublic on the providers silver uses',
    );
  };
}

const api = { isPrivate, isPublic, isLoopback, isV4Format, isV6Format };
for (const name of [
  'toBuffer', 'toString', 'fromPrefixLen', 'mask', 'cidr', 'subnet', 'cidrSubnet', 'not', 'or',
  'isEqual', 'loopback', 'address', 'toLong', 'fromLong', 'normalizeToLong',
]) {
  api[name] = unsupported(name);
}

module.exports = api;
