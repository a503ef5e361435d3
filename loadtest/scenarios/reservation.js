// Published scenario 2, "reservation": same token and ramp as browsing; each iteration POSTs a
// reservation for a random user 1..1000 and a random seat 1..1000 of performance 119, then
// sleeps 1 s. 409 (seat taken) is an expected answer; any 5xx fails the run.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { BASE_URL, PUBLISHED_RAMP, countServerError, randomInt, setupToken, tokenHeaders } from '../lib/common.js';

http.setResponseCallback(http.expectedStatuses(200, 409));

export const options = {
  scenarios: { reservation: PUBLISHED_RAMP },
  thresholds: {
    http_req_duration: ['p(99)<500'],
    http_req_failed: ['rate==0'],
    server_errors: ['count==0'],
  },
};

export function setup() {
  return setupToken();
}

export default function (data) {
  const body = JSON.stringify({
    userId: randomInt(1, 1000),
    concertId: 1,
    performanceId: 119,
    seatId: randomInt(1, 1000),
  });
  const response = countServerError(
    http.post(`${BASE_URL}/api/reservations`, body, {
      headers: tokenHeaders(data.token),
      tags: { name: 'POST /api/reservations' },
    }),
  );
  check(response, { '200 or 409': (r) => r.status === 200 || r.status === 409 });
  sleep(1);
}
