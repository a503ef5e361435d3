// Open model: requests arrive at a constant RATE per second whatever the latency, for
// DURATION (default 20s), on one endpoint FAMILY:
//   catalog  - the three catalog reads, in the browsing mix (1 concerts : 1 performances : 1 seats)
//   seats    - the seat map of performance 119 alone (the heaviest read)
//   queue    - enter the queue, then poll once (two requests per arrival)
//   holds    - hold a random seat of a 2000-seat performance (mostly 409 once it fills up)
// Passes when p(99) < 100 ms with no errors; loadtest/find-max.sh raises RATE until it fails.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, JSON_HEADERS, countServerError, randomInt, setupToken, tokenHeaders } from '../lib/common.js';

http.setResponseCallback(http.expectedStatuses(200, 409));

const FAMILY = __ENV.FAMILY || 'catalog';
const RATE = parseInt(__ENV.RATE || '500', 10);

export const options = {
  scenarios: {
    open: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: Math.min(Math.max(50, Math.ceil(RATE / 4)), 2000),
      maxVUs: Math.max(200, RATE),
    },
  },
  thresholds: {
    http_req_duration: ['p(99)<100'],
    http_req_failed: ['rate==0'],
    server_errors: ['count==0'],
    dropped_iterations: ['count==0'],
  },
};

export function setup() {
  // The queue family needs no token of its own; the others share one, as the published
  // scenarios do.
  return FAMILY === 'queue' ? {} : setupToken();
}

const CATALOG_PATHS = [
  ['/api/concerts', 'GET /api/concerts'],
  ['/api/concerts/1/performances', 'GET /api/concerts/1/performances'],
  ['/api/concerts/1/performances/119/seats', 'GET .../119/seats'],
];

export default function (data) {
  const headers = tokenHeaders(data.token);
  if (FAMILY === 'catalog' || FAMILY === 'seats') {
    const [path, name] = FAMILY === 'seats' ? CATALOG_PATHS[2] : CATALOG_PATHS[__ITER % 3];
    const response = countServerError(http.get(`${BASE_URL}${path}`, { headers, tags: { name } }));
    check(response, { '200': (r) => r.status === 200 });
  } else if (FAMILY === 'queue') {
    const entered = countServerError(
      http.post(`${BASE_URL}/api/queue`, null, { headers: JSON_HEADERS, tags: { name: 'POST /api/queue' } }),
    );
    if (check(entered, { 'entered': (r) => r.status === 200 })) {
      const polled = countServerError(
        http.get(`${BASE_URL}/api/queue`, {
          headers: { 'Queue-Token': entered.json().token },
          tags: { name: 'GET /api/queue' },
        }),
      );
      check(polled, { 'polled': (r) => r.status === 200 });
    }
  } else if (FAMILY === 'holds') {
    const response = countServerError(
      http.post(
        `${BASE_URL}/api/reservations`,
        JSON.stringify({ userId: randomInt(1, 10000), concertId: 3, performanceId: 301, seatId: randomInt(1, 2000) }),
        { headers, tags: { name: 'POST /api/reservations' } },
      ),
    );
    check(response, { '200 or 409': (r) => r.status === 200 || r.status === 409 });
  } else {
    throw new Error(`unknown FAMILY ${FAMILY}`);
  }
}
