// Full flow: FLOW_USERS buyers (default 500, users 1..500) arriving within FLOW_ARRIVAL_SECONDS
// (default 2 s) each enter the queue, wait until
// admitted, browse, hold a free seat of performance 119 (another on 409), charge their balance
// and pay, both with an Idempotency-Key. Needs the demo data reset (make loadtest does it) and
// APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 on the stack.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL, JSON_HEADERS, countServerError, enterQueue, tokenHeaders, waitUntilActive } from '../lib/common.js';

http.setResponseCallback(http.expectedStatuses(200, 204, 409));

const USERS = parseInt(__ENV.FLOW_USERS || '500', 10);
// Buyers arrive within this many seconds, and each polls on its own clock from then on.
const ARRIVAL_SECONDS = parseFloat(__ENV.FLOW_ARRIVAL_SECONDS || '2');
const purchases = new Counter('purchases');
const failedPurchases = new Counter('failed_purchases');

export const options = {
  scenarios: {
    flow: {
      executor: 'per-vu-iterations',
      vus: USERS,
      iterations: 1,
      maxDuration: __ENV.FLOW_MAX_DURATION || '4m',
    },
  },
  thresholds: {
    http_req_duration: ['p(99)<200'],
    // Listed per endpoint so the summary shows where the time goes.
    'http_req_duration{name:POST /api/queue}': ['p(99)<200'],
    'http_req_duration{name:GET /api/queue}': ['p(99)<200'],
    'http_req_duration{name:GET .../119/seats}': ['p(99)<200'],
    'http_req_duration{name:POST /api/reservations}': ['p(99)<200'],
    'http_req_duration{name:POST charge}': ['p(99)<200'],
    'http_req_duration{name:POST /api/payments}': ['p(99)<200'],
    http_req_failed: ['rate==0'],
    server_errors: ['count==0'],
    failed_purchases: ['count==0'],
  },
};

function buy(userId, token) {
  const headers = tokenHeaders(token);
  const get = (path, name) => countServerError(http.get(`${BASE_URL}${path}`, { headers, tags: { name } }));
  get('/api/concerts', 'GET /api/concerts');
  get('/api/concerts/1/performances', 'GET /api/concerts/1/performances');
  for (let attempt = 0; attempt < 5; attempt++) {
    const seats = get('/api/concerts/1/performances/119/seats', 'GET .../119/seats');
    if (seats.status !== 200) return false;
    const free = seats.json().filter((s) => s.status === 'AVAILABLE');
    if (free.length === 0) return false;
    const seat = free[Math.floor(Math.random() * free.length)];
    const held = countServerError(
      http.post(
        `${BASE_URL}/api/reservations`,
        JSON.stringify({ userId, concertId: 1, performanceId: 119, seatId: seat.id }),
        { headers, tags: { name: 'POST /api/reservations' } },
      ),
    );
    if (held.status === 409) continue;
    if (held.status !== 200) return false;
    const reservation = held.json();
    const charged = countServerError(
      http.post(
        `${BASE_URL}/api/users/${userId}/balance/charge`,
        JSON.stringify({ amount: reservation.price }),
        { headers: Object.assign({ 'Idempotency-Key': `charge-${userId}-${reservation.reservationId}` }, JSON_HEADERS), tags: { name: 'POST charge' } },
      ),
    );
    if (charged.status !== 200) return false;
    const paid = countServerError(
      http.post(
        `${BASE_URL}/api/payments`,
        JSON.stringify({ reservationId: reservation.reservationId, userId }),
        { headers: tokenHeaders(token, { 'Idempotency-Key': `pay-${reservation.reservationId}` }), tags: { name: 'POST /api/payments' } },
      ),
    );
    return check(paid, { 'paid': (r) => r.status === 200 && r.json().status === 'PAID' });
  }
  return false;
}

export default function () {
  sleep(Math.random() * ARRIVAL_SECONDS);
  const userId = __VU;
  const entry = waitUntilActive(enterQueue(userId), 180);
  if (entry.status !== 'ACTIVE') {
    failedPurchases.add(1);
    return;
  }
  sleep(Math.random());
  if (buy(userId, entry.token)) {
    purchases.add(1);
  } else {
    failedPurchases.add(1);
  }
}
