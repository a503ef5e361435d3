// Queue storm: STORM_USERS people (default 3000) arrive within STORM_ARRIVAL_SECONDS (default
// 2 s), each enters the queue under its own userId, polls every second (from its own arrival,
// as a browser tab would) until admitted, then leaves to free its slot.
// Measures entry and poll latency and how long admission takes. Run the stack with
// APP__QUEUE__ENTRY_RATE_PER_CLIENT=0: k6 is one client address.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { BASE_URL, countServerError, enterQueue, waitUntilActive } from '../lib/common.js';

const USERS = parseInt(__ENV.STORM_USERS || '3000', 10);
const ARRIVAL_SECONDS = parseFloat(__ENV.STORM_ARRIVAL_SECONDS || '2');
const secondsToAdmission = new Trend('seconds_to_admission');
const admitted = new Counter('admitted');
const notAdmitted = new Counter('not_admitted');

export const options = {
  scenarios: {
    storm: {
      executor: 'per-vu-iterations',
      vus: USERS,
      iterations: 1,
      maxDuration: __ENV.STORM_MAX_DURATION || '3m',
    },
  },
  thresholds: {
    'http_req_duration{name:POST /api/queue}': ['p(99)<100'],
    'http_req_duration{name:GET /api/queue}': ['p(99)<100'],
    http_req_failed: ['rate==0'],
    server_errors: ['count==0'],
    not_admitted: ['count==0'],
  },
};

export default function () {
  sleep(Math.random() * ARRIVAL_SECONDS);
  const started = Date.now();
  const entry = enterQueue(100000 + __VU);
  check(entry, { 'entered': (e) => e.status === 'ACTIVE' || e.status === 'WAITING' });
  const state = waitUntilActive(entry, 150);
  if (state.status === 'ACTIVE') {
    admitted.add(1);
    secondsToAdmission.add((Date.now() - started) / 1000);
    countServerError(
      http.del(`${BASE_URL}/api/queue`, null, {
        headers: { 'Queue-Token': entry.token },
        tags: { name: 'DELETE /api/queue' },
      }),
    );
  } else {
    notAdmitted.add(1);
  }
}
