// Published scenario 2, "reservation", as published (issue #10, item 7): only the base URL
// changes (BASE_URL, default http://127.0.0.1:8080).
//
//   executor   ramping-vus, startVUs 150; 60 s to 200 VUs, then 10 s to 0
//   setup      one queue token (POST /api/queue), shared by every VU
//   iteration  POST /api/reservations {"userId": 1..1000, "concertId": 1, "performanceId": 119,
//              "seatId": 1..1000} (uniformly random), checked for 200 or 409; NO sleep: each VU
//              sends its next hold as soon as the last one is answered
//   headers    Queue-Token: <token>, Content-Type: application/json
//   threshold  http_req_duration p(99) < 500 ms
//
// What differs from scenarios/reservation.js, which was modelled on the same script:
//   - no `sleep(1)` after each hold. reservation.js has one; the published script has none, so
//     this is a closed loop of 150-200 VUs: the request rate is whatever the server answers at,
//     mostly 409s once the 1000 seats are taken.
//   - thresholds: only the published one. reservation.js adds http_req_failed rate == 0 and
//     server_errors count == 0, and declares 409 an expected status; here k6's default stands,
//     so http_req_failed counts the 409s (seat taken) and no 5xx fails the run by itself.
//   - no `name` tag on the request (k6 metadata only, nothing on the wire).
//   - 5xx and connection errors are still counted (`server_errors`, no threshold on it), to be
//     set beside the published "7 server errors"; this adds no request and no wait.
//   Body, headers, VUs and stages are the same as reservation.js (the ramp is lib/common.js
//   PUBLISHED_RAMP for both; its 5 s gracefulRampDown is moot: an iteration is one request).
//
// Why this is believed to match the published script: the published text is not kept in this
// repository. Executor, VUs, stages, the one token from setup, the body with a random user and
// seat in 1..1000 of performance 119, the headers and the p(99) < 500 ms threshold are those
// recorded for it in loadtest/README.md, docs/performance.md and reservation.js (written beside
// the published script), and issue #10 states that the published script has no sleep; the
// demo data it needs (users 1..10000, performance 119 with 1000 seats) is in shared/API.md.
// One deviation that cannot change a request: if the entry in setup is WAITING (it is ACTIVE
// at once on a freshly reset line), setup polls once a second for up to 60 s until it is ACTIVE.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL, PUBLISHED_RAMP } from '../lib/common.js';

const serverErrors = new Counter('server_errors');

export const options = {
  scenarios: { reservation: PUBLISHED_RAMP },
  thresholds: {
    http_req_duration: ['p(99)<500'],
  },
};

function randomInt(min, max) {
  return min + Math.floor(Math.random() * (max - min + 1));
}

export function setup() {
  let entry = http.post(`${BASE_URL}/api/queue`, null, { headers: { 'Content-Type': 'application/json' } }).json();
  for (let waited = 0; entry.status === 'WAITING' && waited < 60; waited += 1) {
    sleep(1);
    entry = http.get(`${BASE_URL}/api/queue`, { headers: { 'Queue-Token': entry.token } }).json();
  }
  if (entry.status !== 'ACTIVE') throw new Error(`no ACTIVE queue token: ${JSON.stringify(entry)}`);
  return { token: entry.token };
}

export default function (data) {
  const body = JSON.stringify({
    userId: randomInt(1, 1000),
    concertId: 1,
    performanceId: 119,
    seatId: randomInt(1, 1000),
  });
  const response = http.post(`${BASE_URL}/api/reservations`, body, {
    headers: { 'Queue-Token': data.token, 'Content-Type': 'application/json' },
  });
  if (response.status >= 500 || response.status === 0) serverErrors.add(1);
  check(response, { '200 or 409': (r) => r.status === 200 || r.status === 409 });
}
