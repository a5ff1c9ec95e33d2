import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Why a webhook URL is refused, or null when it is acceptable. Only http(s), no credentials in the URL.
 * Unless private targets are allowed, IP literals must be public unicast addresses and `localhost` names
 * are refused; other host names are checked again on every connection (the dispatcher's agent refuses
 * private and loopback addresses after DNS resolution, so a name that later resolves inward is refused).
 */
export function webhookUrlProblem(url: string, allowPrivate: boolean): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be an absolute http(s) URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be an http or https URL';
  if (parsed.username || parsed.password) return 'must not contain credentials';
  if (allowPrivate) return null;
  const host = parsed.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return 'must not point to a private or loopback address';
  if (ipaddr.isValid(host) && !isPublicAddress(host)) return 'must not point to a private or loopback address';
  return null;
}

/** A public unicast address (not private, loopback, link-local, unique-local, multicast, reserved...). */
export function isPublicAddress(text: string): boolean {
  if (!ipaddr.isValid(text)) return false;
  let address = ipaddr.parse(text);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) address = (address as ipaddr.IPv6).toIPv4Address();
  return address.range() === 'unicast';
}

/**
 * A DNS lookup for outgoing webhook connections that fails for non-public addresses, so a host name that
 * resolves to a private or loopback address (or is rebound to one after the URL was accepted) is refused
 * at connection time. Node skips lookup for IP literals: callers check those with isPublicAddress.
 */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, '', 0);
    const list = addresses as dns.LookupAddress[];
    const refused = list.find((a) => !isPublicAddress(a.address));
    if (refused || list.length === 0) {
      const problem = Object.assign(new Error(`refused: ${hostname} resolves to a private or loopback address`), { code: 'EPRIVATEADDRESS' });
      return callback(problem, '', 0);
    }
    if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
    callback(null, list[0].address, list[0].family);
  });
};
