// Soak (issue #12, item 5): mixed traffic for SOAK_DURATION (default 30m) in waves, so that the
// line fills and then drains again and again. Run by scripts/soak.sh (make soak DURATION=30m),
// which samples the service, Redis and PostgreSQL every 10 s and judges the run; the stack needs
// APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 (k6 is one client address) and a small
// APP__QUEUE__MAX_ACTIVE / APP__QUEUE__ADMIT_PER_SECOND so that people really wait.
//
// Each VU is a stream of people, one after another. A person (a userId of 1..10000, the demo
// users) enters the line bound to that userId and polls as pollAfterSeconds says (never faster
// than every second) until ACTIVE; some give up while WAITING (they just stop polling and the
// token idles out). Once ACTIVE: the concerts, a concert's performances and a seat map, with a
// second or two of reading between; then most hold one or two free seats and either pay (charge
// the balance, then pay, both with an Idempotency-Key), cancel the hold, or walk away from it
// (it lapses); some leave the line (DELETE /api/queue), others simply stop (the ACTIVE token
// expires). Then a pause before the next person of that VU.
//
// The waves: the number of VUs cycles over SOAK_WAVE_SECONDS (default 240): a quarter rising
// from SOAK_LOW_VUS (40) to SOAK_HIGH_VUS (400), a quarter there, a quarter falling, a quarter low.
// Expected statuses: 200, 204, 409 (a seat taken, a limit), and 401 / 403 for a token that
// ended while its person still used it; anything else is counted in `unexpected` and any 5xx
// (or no answer) in `server_errors`, and both must stay 0.
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL, JSON_HEADERS, countServerError, tokenHeaders } from '../lib/common.js';

http.setResponseCallback(http.expectedStatuses(200, 204, 401, 403, 409));

function seconds(text) {
  const m = /^(\d+)(s|m|h)$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return parseInt(m[1], 10) * { s: 1, m: 60, h: 3600 }[m[2]];
}

const DURATION = seconds(__ENV.SOAK_DURATION || '30m');
const WAVE = parseInt(__ENV.SOAK_WAVE_SECONDS || '240', 10);
const LOW = parseInt(__ENV.SOAK_LOW_VUS || '40', 10);
const HIGH = parseInt(__ENV.SOAK_HIGH_VUS || '400', 10);

function stages() {
  const out = [];
  let left = DURATION;
  const quarter = Math.max(1, Math.floor(WAVE / 4));
  const pattern = [HIGH, HIGH, LOW, LOW];
  let i = 0;
  while (left > 0) {
    const d = Math.min(quarter, left);
    out.push({ duration: `${d}s`, target: pattern[i % 4] });
    left -= d;
    i += 1;
  }
  return out;
}

const unexpected = new Counter('unexpected');
const people = new Counter('people');
const admitted = new Counter('admitted');
const gaveUpWaiting = new Counter('gave_up_waiting');
const paid = new Counter('paid');
const cancelled = new Counter('cancelled');
const walkedAway = new Counter('walked_away');
const left = new Counter('left');
const tokenEnded = new Counter('token_ended');

export const options = {
  scenarios: {
    soak: { executor: 'ramping-vus', startVUs: LOW, stages: stages(), gracefulRampDown: '20s' },
  },
  thresholds: {
    server_errors: ['count==0'],
    unexpected: ['count==0'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

function call(response, expected) {
  countServerError(response);
  if (!expected.includes(response.status)) {
    unexpected.add(1, { status: String(response.status) });
    console.warn(`UNEXPECTED ${response.status} ${response.request.method} ${response.request.url} ${String(response.body).slice(0, 200)}`);
  }
  return response;
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const PERFORMANCES = { 1: [119, 120, 121], 2: [201, 202], 3: [301], 4: [401, 402] };

// Thinking time of a person, 1 s to 1 + spread s.
function think(spread) {
  sleep(1 + Math.random() * spread);
}

// A held session: read, hold, then pay, cancel or walk away. Returns false when the token ended.
function session(userId, token) {
  const headers = tokenHeaders(token);
  const ok = [200, 401, 403];
  const get = (path, name) => call(http.get(`${BASE_URL}${path}`, { headers, tags: { name } }), ok);
  if (get('/api/concerts', 'GET /api/concerts').status !== 200) return false;
  think(1);
  const concert = 1 + Math.floor(Math.random() * 4);
  if (get(`/api/concerts/${concert}/performances`, 'GET performances').status !== 200) return false;
  think(1);
  const performance = pick(PERFORMANCES[concert]);
  const seats = get(`/api/concerts/${concert}/performances/${performance}/seats`, 'GET seats');
  if (seats.status !== 200) return false;
  think(2);
  if (Math.random() < 0.15) return true; // only looked
  const free = seats.json().filter((s) => s.status === 'AVAILABLE');
  if (free.length === 0) return true;
  const count = Math.random() < 0.7 ? 1 : 2;
  const start = Math.floor(Math.random() * Math.max(1, free.length - count));
  const seatIds = free.slice(start, start + count).map((s) => s.id);
  const held = call(
    http.post(`${BASE_URL}/api/reservations`, JSON.stringify({ userId, concertId: concert, performanceId: performance, seatIds }),
      { headers, tags: { name: 'POST /api/reservations' } }),
    [200, 401, 403, 409],
  );
  if (held.status !== 200) return held.status === 409;
  const reservations = held.json().reservations;
  think(2);
  const roll = Math.random();
  if (roll < 0.35) {
    const price = reservations.reduce((sum, r) => sum + r.price, 0);
    const key = `${__VU}-${__ITER}-${Date.now()}`;
    const charged = call(
      http.post(`${BASE_URL}/api/users/${userId}/balance/charge`, JSON.stringify({ amount: price }),
        { headers: Object.assign({ 'Idempotency-Key': `charge-${key}` }, JSON_HEADERS), tags: { name: 'POST charge' } }),
      [200],
    );
    if (charged.status !== 200) return true;
    think(1);
    const payment = call(
      http.post(`${BASE_URL}/api/payments`, JSON.stringify({ reservationIds: reservations.map((r) => r.reservationId), userId }),
        { headers: tokenHeaders(token, { 'Idempotency-Key': `pay-${key}` }), tags: { name: 'POST /api/payments' } }),
      [200, 401, 403, 409],
    );
    if (payment.status === 200) paid.add(1);
    return false; // a payment ends the token
  }
  if (roll < 0.75) {
    for (const r of reservations) {
      call(http.del(`${BASE_URL}/api/reservations/${r.reservationId}`, null, { headers, tags: { name: 'DELETE /api/reservations' } }),
        [204, 401, 403, 409]);
    }
    cancelled.add(1);
    return true;
  }
  walkedAway.add(1); // the hold lapses by itself
  return true;
}

export default function () {
  const userId = 1 + Math.floor(Math.random() * 10000);
  people.add(1);
  const entered = call(
    http.post(`${BASE_URL}/api/queue`, JSON.stringify({ userId }), { headers: JSON_HEADERS, tags: { name: 'POST /api/queue' } }),
    [200],
  );
  if (entered.status !== 200) {
    sleep(2);
    return;
  }
  let state = entered.json();
  const token = state.token;
  // Some people lose patience after a while in the line and just close the tab.
  const patience = Math.random() < 0.1 ? 5 + Math.random() * 30 : 600;
  const began = Date.now();
  while (state.status === 'WAITING') {
    if ((Date.now() - began) / 1000 > patience) {
      gaveUpWaiting.add(1);
      think(3);
      return;
    }
    sleep(Math.max(1, state.pollAfterSeconds || 1));
    const polled = call(http.get(`${BASE_URL}/api/queue`, { headers: { 'Queue-Token': token }, tags: { name: 'GET /api/queue' } }), [200, 401]);
    if (polled.status !== 200) {
      tokenEnded.add(1);
      return;
    }
    state = polled.json();
  }
  admitted.add(1);
  const alive = session(userId, token);
  if (!alive) {
    tokenEnded.add(1);
  } else if (Math.random() < 0.6) {
    call(http.del(`${BASE_URL}/api/queue`, null, { headers: { 'Queue-Token': token }, tags: { name: 'DELETE /api/queue' } }), [204, 401]);
    left.add(1);
  }
  // else: stops here, and the ACTIVE token expires by itself
  think(4);
}
