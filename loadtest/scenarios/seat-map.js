// One URL as fast as it is answered: VUS virtual users (default 50) in a closed loop, no think
// time, for DURATION (default 30s), each sending GET TARGET_URL with the header
// `Queue-Token: TOKEN`. loadtest/seat-map-vs-nginx.sh runs it against the service's seat map of
// performance 119 and against nginx serving the same bytes from a file: only TARGET_URL changes,
// so the request rates and tails of the two runs can be set side by side.
// Response bodies are discarded by k6 (the same for both targets), so the load generator spends
// its share of the two cores on requests, not on keeping 53 KB strings.
import http from 'k6/http';
import { check } from 'k6';

const TARGET_URL = __ENV.TARGET_URL || 'http://127.0.0.1:8080/api/concerts/1/performances/119/seats';
const TOKEN = __ENV.TOKEN || '';

export const options = {
  discardResponseBodies: true,
  scenarios: {
    seat_map: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '50', 10),
      duration: __ENV.DURATION || '30s',
      gracefulStop: '5s',
    },
  },
  thresholds: {
    // Any non-200 fails the run: a ratio of failures served fast would mean nothing.
    http_req_failed: ['rate==0'],
  },
};

const params = { headers: { 'Queue-Token': TOKEN } };

export default function () {
  const response = http.get(TARGET_URL, params);
  check(response, { '200': (r) => r.status === 200 });
}
