/**
 * Ethernet addresses in the three forms Tenet uses: "aa:bb:cc:dd:ee:ff" text,
 * 6 bytes (OpenFlow values), and a number below 2^48 (IPAM arithmetic). One place,
 * so IPAM, the pipeline and the codec agree on case and padding.
 */

const MAC_RE = /^([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2})$/i;

/** Parses "a:b:c:d:e:f" (1-2 hex digits per part, any case) into 6 bytes (into `out` if given), or undefined. */
export function macToBytes(s: string, out: Uint8Array = new Uint8Array(6)): Uint8Array | undefined {
  if (s.length === 17) {
    // fast path for the canonical form (the compiler parses one per endpoint)
    let ok = true;
    for (let i = 0; i < 6 && ok; i++) {
      const hi = hexDigit(s.charCodeAt(i * 3));
      const lo = hexDigit(s.charCodeAt(i * 3 + 1));
      if (hi < 0 || lo < 0 || (i < 5 && s.charCodeAt(i * 3 + 2) !== 58)) ok = false;
      else out[i] = (hi << 4) | lo;
    }
    if (ok) return out;
  }
  const m = MAC_RE.exec(s);
  if (!m) return undefined;
  for (let i = 0; i < 6; i++) out[i] = parseInt(m[i + 1]!, 16);
  return out;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** 6 bytes -> lower-case, zero-padded text (the form OVS prints). */
export function bytesToMac(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (i ? ':' : '') + (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
}

/** Text -> number (< 2^48), or undefined if it is not a MAC. */
export function macToNumber(s: string): number | undefined {
  const b = macToBytes(s);
  if (!b) return undefined;
  let v = 0;
  for (let i = 0; i < 6; i++) v = v * 256 + b[i]!;
  return v;
}

/** Number (< 2^48) -> lower-case, zero-padded text. */
export function numberToMac(v: number): string {
  const b = new Uint8Array(6);
  for (let i = 5; i >= 0; i--) {
    b[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return bytesToMac(b);
}
