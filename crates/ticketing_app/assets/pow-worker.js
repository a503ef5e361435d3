// Solves one proof-of-work challenge of the gate against bots (ALTCHA v1: find the number in
// [0, maxnumber] whose decimal spelling after the salt hashes, SHA-256 in hex, to the challenge),
// off the page's main thread so that the page stays responsive and readable meanwhile.
//
// In:  { algorithm: 'SHA-256', challenge, salt, maxnumber }
// Out: { progress } (0..1, of the worst case) every so often, then { number } or { error }.
'use strict';

/** Digests in flight at once: WebCrypto answers each with a promise; a batch keeps it busy. */
const BATCH = 256;
/** At most this often a progress message (ms). */
const PROGRESS_EVERY_MS = 150;

function bytesOfHex(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
  return bytes;
}

function same(buffer, expected) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length !== expected.length) return false;
  for (let i = 0; i < bytes.length; i += 1) if (bytes[i] !== expected[i]) return false;
  return true;
}

async function solve({ algorithm, challenge, salt, maxnumber }) {
  if (algorithm !== 'SHA-256' || typeof challenge !== 'string' || typeof salt !== 'string'
      || !Number.isInteger(maxnumber) || maxnumber < 0) {
    return { error: 'not a challenge this page can solve' };
  }
  const encoder = new TextEncoder();
  const expected = bytesOfHex(challenge);
  let lastProgress = 0;
  for (let start = 0; start <= maxnumber; start += BATCH) {
    const end = Math.min(start + BATCH - 1, maxnumber);
    const digests = [];
    for (let n = start; n <= end; n += 1) {
      digests.push(crypto.subtle.digest('SHA-256', encoder.encode(salt + n)));
    }
    const hashes = await Promise.all(digests);
    for (let i = 0; i < hashes.length; i += 1) {
      if (same(hashes[i], expected)) return { number: start + i };
    }
    const now = Date.now();
    if (now - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = now;
      postMessage({ progress: maxnumber === 0 ? 1 : end / maxnumber });
    }
  }
  return { error: 'no number solves this challenge' };
}

onmessage = (event) => {
  solve(event.data || {}).then(postMessage, (error) => postMessage({ error: String(error) }));
};
