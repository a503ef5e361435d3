// Published scenario 1, "concert browsing": one queue token taken in setup, then 150 -> 200
// VUs over 60 s (+10 s ramp-down); each iteration lists concerts, sleeps 1 s, lists the
// performances of concert 1, sleeps 1 s, lists the seats of performance 119.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { BASE_URL, PUBLISHED_RAMP, countServerError, setupToken, tokenHeaders } from '../lib/common.js';

export const options = {
  scenarios: { browsing: PUBLISHED_RAMP },
  thresholds: {
    http_req_duration: ['p(99)<500'],
    // Listed per endpoint so the summary shows where the time goes.
    'http_req_duration{name:GET /api/concerts}': ['p(99)<500'],
    'http_req_duration{name:GET /api/concerts/1/performances}': ['p(99)<500'],
    'http_req_duration{name:GET .../119/seats}': ['p(99)<500'],
    http_req_failed: ['rate==0'],
    server_errors: ['count==0'],
  },
};

export function setup() {
  return setupToken();
}

export default function (data) {
  const params = (name) => ({ headers: tokenHeaders(data.token), tags: { name } });
  let response = countServerError(http.get(`${BASE_URL}/api/concerts`, params('GET /api/concerts')));
  check(response, { 'concerts 200': (r) => r.status === 200 });
  sleep(1);
  response = countServerError(
    http.get(`${BASE_URL}/api/concerts/1/performances`, params('GET /api/concerts/1/performances')),
  );
  check(response, { 'performances 200': (r) => r.status === 200 });
  sleep(1);
  response = countServerError(
    http.get(`${BASE_URL}/api/concerts/1/performances/119/seats`, params('GET .../119/seats')),
  );
  // No JSON parsing here: on a 2-core machine k6 parsing 1000 seats per request would steal
  // the CPU the server is measured with.
  check(response, { 'seats 200': (r) => r.status === 200 });
}
