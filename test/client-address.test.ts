/**
 * The address a request is limited by without a caller key (src/http/client-address.ts): IPv4 as it is, IPv6 by
 * its /64 (or server.clientIpv6PrefixLength bits), and a connection the client has already reset (no address any more) in one bucket instead of a 500.
 */
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { clientAddress, UNKNOWN_ADDRESS } from '../src/http/client-address.js'

// The connection's own address, or (behind a trusted proxy) one read from X-Forwarded-For.
const withIp = (ip: string | undefined): FastifyRequest => ({ ip, socket: { remoteAddress: ip } }) as unknown as FastifyRequest
const forwarded = (ip: string): FastifyRequest => ({ ip, socket: { remoteAddress: '10.0.0.2' } }) as unknown as FastifyRequest

t.test('client addresses', async (t) => {
  t.equal(clientAddress(withIp('192.0.2.7')), '192.0.2.7')
  t.equal(clientAddress(withIp('2001:db8:1:2:3:4:5:6')), clientAddress(withIp('2001:db8:1:2:ffff::1')), 'one /64, one key')
  t.not(clientAddress(withIp('2001:db8:1:2::1')), clientAddress(withIp('2001:db8:1:3::1')), 'another /64, another key')
  t.equal(clientAddress(withIp(undefined)), UNKNOWN_ADDRESS, 'a reset connection: no exception')
})

t.test('server.clientIpv6PrefixLength: the bits of an IPv6 address that name one client', async (t) => {
  t.not(clientAddress(withIp('2001:db8:1:2::a:7'), 128), clientAddress(withIp('2001:db8:1:2::b:7'), 128), '128: each address its own key')
  t.equal(clientAddress(withIp('2001:db8:1:2::a:7'), 128), clientAddress(withIp('2001:DB8:1:2:0:0:A:7'), 128), 'whatever its spelling')
  t.equal(clientAddress(forwarded('[2001:db8:1:2::a:7]:443'), 128), clientAddress(withIp('2001:db8:1:2::a:7'), 128), 'forwarded too')
  t.equal(clientAddress(withIp('2001:db8:1:2::1'), 48), clientAddress(withIp('2001:db8:1:3::1'), 48), '48: a site\'s /48 is one key')
  t.equal(clientAddress(withIp('::ffff:192.0.2.7'), 128), '192.0.2.7', 'an IPv4-mapped address is still its IPv4 address')
})

t.test('a forwarded address with its client\'s port is the address (Azure Application Gateway writes ports)', async (t) => {
  t.equal(clientAddress(forwarded('198.51.100.9:40001')), '198.51.100.9')
  t.equal(clientAddress(forwarded('198.51.100.9:40002')), clientAddress(forwarded('198.51.100.9')), 'one client whatever its port')
  t.equal(clientAddress(forwarded('[2001:db8:1:2::1]:443')), clientAddress(forwarded('2001:db8:1:2::7')), 'a bracketed IPv6 address with a port: its /64')
  t.not(clientAddress(forwarded('[2001:db8:1:2::1]:443')), clientAddress(forwarded('2001:db8:1:3::1')), 'another /64, another key')
  t.equal(clientAddress(forwarded('2001:db8::1:8080')), clientAddress(forwarded('2001:db8::1:8081')), 'a bare IPv6 address keeps its last group (no port there), within its /64')
  t.equal(clientAddress(forwarded('::ffff:192.0.2.7')), '192.0.2.7', 'an IPv4-mapped address is its IPv4 address')
})

t.test('a forwarded entry that is not an IP address is no key of its own (memory: every key is remembered)', async (t) => {
  // With server.trustProxy: true the left-most X-Forwarded-For entry is whatever the client wrote, up to the
  // header limit (32 KiB by default): each distinct one would be kept by the failed-check bound and the limiters.
  for (const junk of ['x'.repeat(30000), `2001:db8::${'z'.repeat(30000)}`, '203.0.113.5:99999x', '999.1.1.1:80', 'unix:']) {
    t.equal(clientAddress(forwarded(junk)), UNKNOWN_ADDRESS, junk.slice(0, 20))
  }
  t.equal(clientAddress(forwarded('192.0.2.7')), '192.0.2.7', 'an address is still its own key')
})

t.test('a bracketed IPv6 address, with a port or without, is read whatever the case of its hex digits', async (t) => {
  t.equal(clientAddress(forwarded('[2001:DB8:1:2::A]:443')), clientAddress(forwarded('2001:db8:1:2::b')), 'upper case: the same /64')
  t.not(clientAddress(forwarded('[2001:DB8:1:2::A]:443')), UNKNOWN_ADDRESS)
  t.equal(clientAddress(forwarded('[::FFFF:192.0.2.7]:8080')), '192.0.2.7', 'an IPv4-mapped one with a port')
  t.equal(clientAddress(forwarded('[2001:db8:1:2::1]')), clientAddress(forwarded('2001:db8:1:2::7')), 'in brackets without a port: its /64, not the shared unknown key')
  t.equal(clientAddress(forwarded('192.0.2.7:')), UNKNOWN_ADDRESS, 'nor one with an empty port')
})
